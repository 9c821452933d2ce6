"""Partition names and days."""

from __future__ import annotations

import datetime as dt

from meshlens.partitions import day_from_name, day_of, partition_name
from meshlens.timeunits import NANOS_PER_DAY


def test_names_round_trip() -> None:
    day = day_of(int(dt.datetime(2026, 11, 26, 23, 59, tzinfo=dt.UTC).timestamp()) * 10**9)
    assert partition_name("spans", day) == "spans_d20261126"
    assert day_from_name("spans_d20261126") == day
    assert day_from_name("metric_points_d20261126") == day
    assert day_from_name("spans_incoming") is None


def test_day_boundaries() -> None:
    assert day_of(NANOS_PER_DAY - 1) == 0
    assert day_of(NANOS_PER_DAY) == 1
