"""`OwnLoopTask`: the deriver's coroutine on a thread and event loop of its own."""

from __future__ import annotations

import asyncio
import threading

from collector.derive.own_loop import OwnLoopTask


def test_the_coroutine_runs_on_another_thread_and_loop_and_stop_cancels_it() -> None:
    seen: dict[str, object] = {}
    cancelled = threading.Event()

    async def forever() -> None:
        seen["thread"] = threading.get_ident()
        seen["loop"] = asyncio.get_running_loop()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        task = OwnLoopTask(forever, name="test-own-loop")
        task.start()
        for _ in range(200):
            if "loop" in seen:
                break
            await asyncio.sleep(0.01)
        assert task.running
        assert seen["thread"] != threading.get_ident()
        assert seen["loop"] is not asyncio.get_running_loop()
        await task.stop()
        assert not task.running
        assert cancelled.is_set()

    asyncio.run(main())


def test_stop_after_the_coroutine_ended_by_itself() -> None:
    done = threading.Event()

    async def brief() -> None:
        done.set()

    async def main() -> None:
        task = OwnLoopTask(brief, name="test-own-loop")
        task.start()
        assert done.wait(5)
        await task.stop()
        assert not task.running

    asyncio.run(main())
