"""One way to wait for something: poll a check until it gives a truthy value, or fail saying
what was awaited and for how long."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str | Callable[[], str],
    every: float = 0.2,
) -> T:
    """The first truthy value of `check()`, called every `every` seconds for up to `timeout`
    seconds (and once more at the end). On a timeout, AssertionError names `what` was awaited
    (a callable is asked then, so the message can show the state reached) and for how long."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            awaited = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:g} s for {awaited}")
        time.sleep(min(every, left))
