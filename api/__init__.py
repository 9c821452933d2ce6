"""The web API: health, readiness, Prometheus metrics, and the JSON API under /api/v1.

The JSON API: `v1` (endpoints) parses `windows`, calls `queries` (which read the rollups with
`rollup_sql`) and answers `results` as `schemas`. Dashboards use `queries` too.

Never imports `collector`: what it needs from ingest (its health, its metrics registry) is
handed over by the entry point.
"""
