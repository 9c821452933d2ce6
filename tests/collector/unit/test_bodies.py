"""Bounded body reading and gzip inflation."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from collector.errors import MalformedRequest, Overloaded, RequestTooLarge, UnsupportedMediaType
from collector.receivers.bodies import BodyBudget, check_encoding, read_body


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _read(data: bytes, *, gzipped: bool, limit: int) -> bytes:
    return asyncio.run(read_body(_chunks(data), gzipped=gzipped, limit=limit))


def test_plain_body_within_limit() -> None:
    assert _read(b"x" * 5000, gzipped=False, limit=5000) == b"x" * 5000


def test_plain_body_over_limit() -> None:
    with pytest.raises(RequestTooLarge, match="larger than 4999 bytes"):
        _read(b"x" * 5000, gzipped=False, limit=4999)


def test_gzip_round_trip_and_several_members() -> None:
    payload = bytes(range(256)) * 100
    assert _read(gzip.compress(payload), gzipped=True, limit=len(payload)) == payload
    two = gzip.compress(b"first ") + gzip.compress(b"second")
    assert _read(two, gzipped=True, limit=100) == b"first second"


def test_gzip_limit_counts_decompressed_bytes() -> None:
    bomb = gzip.compress(bytes(10_000_000))  # about 10 kB on the wire
    with pytest.raises(RequestTooLarge, match="after decompression"):
        _read(bomb, gzipped=True, limit=1_000_000)


def test_truncated_and_corrupt_gzip() -> None:
    data = gzip.compress(b"hello world" * 100)
    with pytest.raises(MalformedRequest, match="truncated"):
        _read(data[:-10], gzipped=True, limit=10_000)
    with pytest.raises(MalformedRequest, match="corrupt"):
        _read(b"\x1f\x8b" + b"\x00" * 30, gzipped=True, limit=10_000)
    with pytest.raises(MalformedRequest, match="truncated"):
        _read(b"", gzipped=True, limit=10_000)


def test_raw_deflate_is_not_gzip() -> None:
    with pytest.raises(MalformedRequest):
        _read(zlib.compress(b"abc"), gzipped=True, limit=10_000)


@pytest.mark.parametrize(("header", "gzipped"), [("", False), ("identity", False), ("GZIP", True)])
def test_known_encodings(header: str, gzipped: bool) -> None:
    assert check_encoding(header) is gzipped


def test_unknown_encoding() -> None:
    with pytest.raises(UnsupportedMediaType, match="'br'"):
        check_encoding("br")


def test_a_body_is_counted_against_the_budget_as_it_arrives_and_given_back() -> None:
    budget = BodyBudget(10_000, retry_after=3)
    other = budget.hold()
    other.grow_to(4_000)
    with budget.hold() as hold:
        data = asyncio.run(read_body(_chunks(b"x" * 5_000), gzipped=False, limit=9_000, hold=hold))
        assert len(data) == 5_000
        assert budget.held == 9_000
    assert budget.held == 4_000


def test_a_body_past_the_budget_is_overloaded_with_its_retry_delay() -> None:
    budget = BodyBudget(10_000, retry_after=3)
    budget.hold().grow_to(6_000)
    with budget.hold() as hold, pytest.raises(Overloaded) as refused:
        asyncio.run(read_body(_chunks(b"x" * 5_000), gzipped=False, limit=9_000, hold=hold))
    assert refused.value.retry_after == 3
    assert budget.held == 6_000  # what the refused body held is given back


def test_inflated_bytes_count_against_the_budget() -> None:
    budget = BodyBudget(10_000, retry_after=1)
    budget.hold().grow_to(1)
    compressed = gzip.compress(b"x" * 50_000)
    with budget.hold() as hold, pytest.raises(Overloaded):
        asyncio.run(read_body(_chunks(compressed), gzipped=True, limit=100_000, hold=hold))


def test_a_body_alone_is_admitted_past_the_budget() -> None:
    budget = BodyBudget(1_000, retry_after=1)
    with budget.hold() as hold:
        data = asyncio.run(read_body(_chunks(b"x" * 5_000), gzipped=False, limit=9_000, hold=hold))
    assert len(data) == 5_000
    assert budget.held == 0
