"""How many requests one sampled span stands for: its adjusted count.

OpenTelemetry probability sampling records the rejection threshold of a span in its W3C
`tracestate`, as the `th` sub-key of the `ot` entry (`ot=th:8;rv:...`): 1 to 14 hex digits,
right-padded with zeros to 56 bits. A span kept with threshold T stands for
2^56 / (2^56 - T) spans (`th:0`: 1, every span kept; `th:8`: 2, half of them; `th:c`: 4).
(opentelemetry-specification, specification/trace/tracestate-probability-sampling.md.)
Envoy and linkerd2-proxy record no probability: for them a setting declares the percentage the
mesh samples (`span_sampling_percent`), or their signals are marked as sampled at an unknown
rate. Counts are whole: a fractional adjusted count (th:4 is 4/3) is rounded up or down at
random, in proportion, by the span's random id, so sums stay unbiased.
"""

from __future__ import annotations

_FULL = 1 << 56
_MAX_WEIGHT = (1 << 31) - 1  # the halves' integer column
_HEX = frozenset("0123456789abcdef")
_CACHE_LIMIT = 1_000
_counts: dict[str, float | None] = {}  # tracestate -> adjusted count: few distinct values


def adjusted_count(trace_state: str) -> float | None:
    """The adjusted count `ot=th:` in `trace_state` gives, or None when it gives none."""
    if trace_state in _counts:
        return _counts[trace_state]
    found = _parse(trace_state)
    if len(_counts) >= _CACHE_LIMIT:
        _counts.clear()
    _counts[trace_state] = found
    return found


def _parse(trace_state: str) -> float | None:
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for field in value.split(";"):
            name, _, threshold = field.partition(":")
            if name == "th" and 1 <= len(threshold) <= 14 and set(threshold) <= _HEX:
                return _FULL / (_FULL - int(threshold.ljust(14, "0"), 16))
        return None
    return None


def declared_count(percent: float) -> float:
    """The adjusted count of a span sampled at `percent` (0 < percent <= 100)."""
    return 100.0 / percent


def whole(count: float, span_id: bytes) -> int:
    """`count` as a whole number of requests: its fraction decides up or down by `span_id`."""
    base = int(count)
    fraction = count - base
    if fraction and int.from_bytes(span_id[:7], "big") < fraction * _FULL:
        base += 1
    return max(1, min(base, _MAX_WEIGHT))
