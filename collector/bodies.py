"""Request bodies read under a size limit, gzip inflated in bounded chunks.

The limit counts decompressed bytes and is enforced while inflating: a gzip bomb stops at the
limit (413) and is never inflated in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from collector.errors import MalformedRequest, RequestTooLarge, UnsupportedMediaType

_CHUNK = 64 * 1024


def check_encoding(content_encoding: str) -> bool:
    """True for gzip, False for identity; UnsupportedMediaType for anything else."""
    encoding = content_encoding.strip().lower()
    if encoding in {"", "identity"}:
        return False
    if encoding in {"gzip", "x-gzip"}:
        return True
    raise UnsupportedMediaType(f"unsupported Content-Encoding {content_encoding!r}; use gzip")


async def read_body(chunks: AsyncIterator[bytes], *, gzipped: bool, limit: int) -> bytes:
    """The whole body, decompressed when `gzipped`; RequestTooLarge past `limit` bytes."""
    if not gzipped:
        return await _read_plain(chunks, limit)
    return await _read_gzip(chunks, limit)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the body is larger than {limit} bytes after decompression")


async def _read_plain(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def _read_gzip(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    inflater = _BoundedGunzip(limit)
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        inflater.feed(chunk)
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

    def finish(self) -> bytes:
        if not self._member.eof:
            raise MalformedRequest("the gzip body is truncated")
        return bytes(self._out)
