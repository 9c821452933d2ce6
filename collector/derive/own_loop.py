"""A coroutine on a thread and event loop of its own: how `meshlens serve` runs the deriver.

A derivation pass is some thirty statements, each awaited. On the server's event loop every
await also waits for whatever ingest runs between two awaits (decoding a request, formatting
its COPY rows, deriving a batch: tens of milliseconds each under load), so a pass that takes
PostgreSQL about a second took three, and calls without a server half showed on their edges
seconds late. On a loop of its own, an awaited statement waits for the GIL at most (Python
hands it over every `sys.getswitchinterval()`, 5 ms), not for the ingest path. The deriver
shares nothing with ingest but its database and `/metrics` (prometheus-client is
thread-safe); the cardinality budget it folds with is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

STOP_TIMEOUT_SECONDS = 10.0


class OwnLoopTask:
    """Runs `factory()` on a new thread's own event loop until `stop()`."""

    def __init__(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._factory = factory
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the thread; returns once its task is scheduled."""
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._task = loop.create_task(self._factory())
        self._started.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def stop(self) -> None:
        """Cancel the task (a pass in flight rolls back) and wait for the thread to end."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(task.cancel)
        await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_SECONDS)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
