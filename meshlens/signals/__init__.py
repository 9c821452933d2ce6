"""Pure derivation logic shared by the collector (which derives) and the API (which reads).

Histogram math, error classification, virtual peers and mTLS states. No SQLAlchemy, no
FastAPI, no clock: time is always an argument.
"""
