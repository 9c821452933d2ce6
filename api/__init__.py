"""The web API: health, readiness and Prometheus metrics now; the JSON API under /api/v1 next.

Never imports `collector`: what it needs from ingest (its health, its metrics registry) is
handed over by the entry point.
"""
