"""The collector's exception tree: every error a receiver maps to an answer.

IngestError
├── PermanentError          the request is wrong; clients must not retry it
│   ├── MalformedRequest    400 / INVALID_ARGUMENT
│   ├── UnsupportedMediaType 415 / (HTTP only)
│   ├── RequestTooLarge     413 / RESOURCE_EXHAUSTED
│   └── Unauthenticated     401 / UNAUTHENTICATED: no or an unknown ingest token
└── RetryableError          try again later (Retry-After)
    ├── Overloaded          429 / UNAVAILABLE: too much uncommitted data in flight
    └── StoreUnavailable    503 / UNAVAILABLE: the database is down or too slow
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error the collector answers with."""


class PermanentError(IngestError):
    """The request itself is wrong: answered with a 4xx, never retried by clients."""


class MalformedRequest(PermanentError):
    """The body cannot be decoded (bad protobuf, bad JSON, truncated gzip)."""


class UnsupportedMediaType(PermanentError):
    """Content-Type or Content-Encoding we do not speak."""


class RequestTooLarge(PermanentError):
    """The body is larger than the limit, counted after decompression."""


class Unauthenticated(PermanentError):
    """Ingest tokens are required and the request has none, or an unknown one."""


class RetryableError(IngestError):
    """A temporary refusal: the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(RetryableError):
    """More uncommitted data is in flight than the queue limit allows."""


class StoreUnavailable(RetryableError):
    """The database is unreachable, or did not commit within the ingest timeout."""
