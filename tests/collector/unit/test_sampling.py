"""Adjusted counts of sampled spans (OpenTelemetry tracestate probability sampling)."""

from __future__ import annotations

import os

import pytest

from collector.derive.sampling import adjusted_count, declared_count, whole


@pytest.mark.parametrize(
    ("trace_state", "expected"),
    [
        ("ot=th:0", 1.0),  # every span kept
        ("ot=th:8", 2.0),  # 0x80000000000000: half
        ("ot=th:c", 4.0),
        ("ot=th:fc", 64.0),
        ("ot=th:4", 4 / 3),
        ("vendor=x,ot=rv:0123456789abcd;th:8", 2.0),  # other members and sub-keys around it
        (" ot=th:e , other=1", 8.0),
        ("ot=rv:0123456789abcd", None),  # no threshold
        ("ot=th:", None),
        ("ot=th:123456789abcdef", None),  # 15 digits: more than 56 bits
        ("ot=th:8g", None),  # not hex
        ("ot=th:8A", None),  # the spec's digits are lowercase
        ("othervendor=th:8", None),
        ("", None),
    ],
)
def test_adjusted_count(trace_state: str, expected: float | None) -> None:
    assert adjusted_count(trace_state) == expected


def test_declared_percentage() -> None:
    assert declared_count(1) == 100.0
    assert declared_count(100) == 1.0


def test_whole_counts_are_unbiased() -> None:
    assert whole(2.0, os.urandom(8)) == 2
    assert whole(1.0, b"\xff" * 8) == 1
    counts = [whole(4 / 3, os.urandom(8)) for _ in range(30_000)]
    assert set(counts) == {1, 2}
    assert abs(sum(counts) / len(counts) - 4 / 3) < 0.02  # 6 standard errors
    assert whole(2.0**60, os.urandom(8)) == 2**31 - 1  # the halves' integer column
