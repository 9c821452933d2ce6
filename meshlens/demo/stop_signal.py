"""Ctrl-C and SIGTERM during `meshlens demo`: the first asks the run to stop, a second Ctrl-C
interrupts it at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop; a second Ctrl-C interrupts at once.

    Handlers are installed only in the main thread (Python allows no other) and restored on
    exit.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        self.interrupted_twice = False

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            self.interrupted_twice = True
            raise KeyboardInterrupt
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
