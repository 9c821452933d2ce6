"""Request bodies read under a size limit, gzip inflated in bounded chunks.

The limit counts decompressed bytes and is enforced while inflating: a gzip bomb stops at the
limit (413) and is never inflated in memory. A `BodyBudget` bounds the bytes of every body being
received or decoded at once: past it a request is refused with 429 and Retry-After (the sender
retries) instead of memory growing with the number of open connections.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from types import TracebackType

from collector.errors import MalformedRequest, Overloaded, RequestTooLarge, UnsupportedMediaType

_CHUNK = 64 * 1024


def check_encoding(content_encoding: str) -> bool:
    """True for gzip, False for identity; UnsupportedMediaType for anything else."""
    encoding = content_encoding.strip().lower()
    if encoding in {"", "identity"}:
        return False
    if encoding in {"gzip", "x-gzip"}:
        return True
    raise UnsupportedMediaType(f"unsupported Content-Encoding {content_encoding!r}; use gzip")


class BodyBudget:
    """Bytes of request bodies held at once, across every connection of one receiver.

    One event loop uses it, so no lock is needed. A body alone is always admitted (its own size
    is bounded by the body limit), so a large request cannot be refused forever.
    """

    def __init__(self, limit_bytes: int, retry_after: int) -> None:
        self.limit_bytes = limit_bytes
        self.retry_after = retry_after
        self.held = 0

    def hold(self) -> BodyHold:
        """A hold for one body, to grow as it arrives and to release when it is done."""
        return BodyHold(self)


class BodyHold:
    """One body's share of a `BodyBudget`; a context manager that releases it."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.size = 0

    def grow_to(self, size: int) -> None:
        """Hold `size` bytes in all; Overloaded if that passes the budget with others held."""
        budget = self._budget
        extra = size - self.size
        if extra <= 0:
            return
        others = budget.held - self.size
        if others > 0 and budget.held + extra > budget.limit_bytes:
            raise Overloaded(
                f"{budget.held} bytes of request bodies are being received; retry later",
                budget.retry_after,
            )
        budget.held += extra
        self.size = size

    def release(self) -> None:
        self._budget.held -= self.size
        self.size = 0

    def __enter__(self) -> BodyHold:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


async def read_body(
    chunks: AsyncIterator[bytes], *, gzipped: bool, limit: int, hold: BodyHold | None = None
) -> bytes:
    """The whole body, decompressed when `gzipped`; RequestTooLarge past `limit` bytes.

    With a `hold`, the bytes held in memory so far are counted against its budget as they
    arrive (Overloaded past it).
    """
    hold = hold or BodyBudget(limit, retry_after=1).hold()  # a budget of its own: never refused
    if not gzipped:
        return await _read_plain(chunks, limit, hold)
    return await _read_gzip(chunks, limit, hold)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the body is larger than {limit} bytes after decompression")


async def _read_plain(chunks: AsyncIterator[bytes], limit: int, hold: BodyHold) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        hold.grow_to(size)
        parts.append(chunk)
    return b"".join(parts)


async def _read_gzip(chunks: AsyncIterator[bytes], limit: int, hold: BodyHold) -> bytes:
    inflater = _BoundedGunzip(limit)
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        inflater.feed(chunk)
        hold.grow_to(inflater.size)
    return inflater.finish()


class _BoundedGunzip:
    """Inflates gzip (one or more members) in chunks, never past `limit` output bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        while data:
            if self._member.eof:  # a further gzip member follows (RFC 1952 allows several)
                self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                self._out += self._member.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise MalformedRequest(f"the gzip body is corrupt: {exc}") from exc
            if len(self._out) > self._limit:
                raise _too_large(self._limit)
            data = self._member.unconsumed_tail or self._member.unused_data

    @property
    def size(self) -> int:
        """Bytes inflated so far."""
        return len(self._out)

    def finish(self) -> bytes:
        if not self._member.eof:
            raise MalformedRequest("the gzip body is truncated")
        return bytes(self._out)
