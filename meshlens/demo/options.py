"""The options of a `meshlens demo` run, as its flags set them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoOptions:
    """The demo's own flags (the MESHLENS_* settings come as `Settings`)."""

    endpoint: str | None = None
    rate: float = 20.0
    backfill: float = 30.0
    backfill_rate: float = 2.0
    duration: float | None = None
    seed: int | None = None
