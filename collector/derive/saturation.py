"""Saturation: the highest utilization (in [0, 1]) of a service's gauges, per minute.

The gauges read are a setting (`MESHLENS_SATURATION_METRICS`; defaults and why in
`meshlens.settings.DEFAULT_SATURATION_METRICS`). A point
counts for the service of its resource: `service.name` through `classify.workload_service`
(a Linkerd proxy counts for the workload it fronts), else the resource's Kubernetes workload
(`k8s.deployment.name`, ...; the kubeletstats receiver sends no `service.name`); resources
naming neither are ignored.

Values: NaN, infinities and negative values are ignored (they are no utilization); values above
1 are clamped to 1 (a limit utilization does exceed 1 for a moment: usage above the limit is a
saturated service). A gauge split by CPU mode or state (`cpu.mode`, older `state`,
`process.cpu.state`, `system.cpu.state`) counts the sum of its points at one time over the
modes that are in use (all but `idle` and `free`).
Resent points change nothing (the maximum of the same values), so no cursor is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from collector.derive import classify
from meshlens.timeunits import MINUTE, NANOS_PER_MINUTE

UNKNOWN_SERVICE = "unknown_service"
_MODE_KEYS = ("cpu.mode", "state", "process.cpu.state", "system.cpu.state")
_NOT_IN_USE = frozenset({"idle", "free"})

# (minute (unix s), service) -> highest utilization
Readings = dict[tuple[int, str], float]


def utilization(value: float) -> float | None:
    """`value` as a utilization: clamped to at most 1; None for NaN, infinite or negative."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return min(value, 1.0)


def saturation_service(service: str, resource: Mapping[str, object]) -> str:
    """The service a resource's utilization gauges describe; "" when it names none."""
    if service and service != UNKNOWN_SERVICE:
        return classify.workload_service(service, {}, resource)
    return classify.resource_workload(resource)


class GaugeReadings:
    """The points of one gauge of one resource, combined over CPU modes / states."""

    def __init__(self) -> None:
        self._sums: dict[tuple[int, tuple[tuple[str, str], ...]], float] = {}

    def add(self, time_unix_nano: int, attributes: Mapping[str, object], value: float) -> None:
        """One point; points of other modes at the same time and attributes add up."""
        mode = next((attributes[k] for k in _MODE_KEYS if k in attributes), None)
        if isinstance(mode, str) and mode.lower() in _NOT_IN_USE:
            value = 0.0
        rest = tuple(sorted((k, repr(v)) for k, v in attributes.items() if k not in _MODE_KEYS))
        key = (time_unix_nano, rest)
        self._sums[key] = self._sums.get(key, 0.0) + value

    def fold_into(self, readings: Readings, service: str) -> int:
        """Keep the highest utilization per minute in `readings`; returns values ignored."""
        ignored = 0
        for (time_unix_nano, _), total in self._sums.items():
            value = utilization(total)
            if value is None:
                ignored += 1
                continue
            key = (time_unix_nano // NANOS_PER_MINUTE * MINUTE, service)
            if value > readings.get(key, -1.0):
                readings[key] = value
        return ignored


def merge_readings(into: Readings, other: Readings) -> None:
    """The higher value per key."""
    for key, value in other.items():
        if value > into.get(key, -1.0):
            into[key] = value
