"""Many senders at once, each in the middle of a large body: memory stays bounded.

Without a budget every connection's body would be held in memory as it arrives, so memory grew
with the number of senders. With `MESHLENS_BODY_BUDGET_BYTES`, bodies past it are refused at
once with 429 and Retry-After (the sender retries), the bodies admitted complete and are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from tests.otlp_payloads import string_attribute, trace_request
from tests.reliability_support import RSS_LIMIT_MIB, RssSampler
from tests.support import RunningServer, metric_total, running_server, unique_names

SENDERS = 96
BODY_BYTES = 4 * 1024 * 1024  # 96 bodies of 4 MiB: 384 MiB if all were held at once
HELD_BACK = 1024  # each sender keeps this many bytes of its body back, and waits
CHUNK = 256 * 1024
BUDGET_BYTES = 32 * 1024 * 1024  # the default of MESHLENS_BODY_BUDGET_BYTES


def large_body(service: str) -> bytes:
    """A valid OTLP/HTTP protobuf body of about BODY_BYTES: few spans, large attributes."""
    request = trace_request(service, spans=16)
    filler = "x" * (BODY_BYTES // 16)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.attributes.append(string_attribute("filler", filler))
    return request.SerializeToString()


class Sender:
    """One connection sending a body, all but its last bytes, then waiting."""

    def __init__(self, server: RunningServer, body: bytes) -> None:
        self._port = server.otlp_http_port
        self._body = body
        self.status: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        head = (
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-protobuf\r\n"
            f"Content-Length: {len(self._body)}\r\n\r\n"
        )
        self._writer.write(head.encode())
        end = len(self._body) - HELD_BACK
        with contextlib.suppress(ConnectionError, TimeoutError):
            for start in range(0, end, CHUNK):
                self._writer.write(self._body[start : min(start + CHUNK, end)])
                # a refused sender's body is no longer read: its socket buffers fill up
                await asyncio.wait_for(self._writer.drain(), timeout=2)

    async def answered_early(self) -> bool:
        """Whether the server answered before the whole body came (a refusal)."""
        assert self._reader is not None
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout=0.5)
        except TimeoutError:
            return False
        self.status = int(line.split()[1]) if line else -1
        return True

    async def finish(self) -> None:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(self._body[len(self._body) - HELD_BACK :])
        await self._writer.drain()
        line = await asyncio.wait_for(self._reader.readline(), timeout=120)
        self.status = int(line.split()[1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def offer(server: RunningServer, service: str, sampler: RssSampler) -> list[Sender]:
    senders = [Sender(server, large_body(service)) for _ in range(SENDERS)]
    try:
        await asyncio.gather(*(sender.start() for sender in senders))
        await asyncio.sleep(1.0)  # every admitted body is now held by meshlens, but one KiB
        held = [s for s in senders if not await s.answered_early()]
        assert sampler.peak_mib < RSS_LIMIT_MIB, f"{sampler.peak_mib:.0f} MiB with bodies held"
        await asyncio.gather(*(sender.finish() for sender in held))
    finally:
        for sender in senders:
            sender.close()
    return senders


@pytest.mark.slow
def test_bodies_past_the_budget_are_refused_while_memory_stays_bounded(
    database_url: str, tmp_path: Path
) -> None:
    service = unique_names()("bodies")
    with running_server(database_url, tmp_path / "meshlens.log") as server:
        with RssSampler(lambda: server.process.pid) as rss:
            senders = asyncio.run(offer(server, service, rss))
        statuses = [sender.status for sender in senders]
        stored = server.query("SELECT count(*) FROM spans WHERE service = %s", (service,))[0][0]
        refused = metric_total(
            server, "meshlens_ingest_refused_requests_total", reason="overloaded"
        )
        after = httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=large_body(service),
            headers={"content-type": "application/x-protobuf"},
            timeout=60,
        )
    accepted, turned_away = statuses.count(200), statuses.count(429)
    print(
        f"\nbodies: {SENDERS} senders of {BODY_BYTES >> 20} MiB at once: {accepted} stored, "
        f"{turned_away} refused with 429; peak RSS {rss.peak_mib:.0f} MiB"
    )
    assert accepted + turned_away == SENDERS, statuses
    assert 1 <= accepted <= BUDGET_BYTES // BODY_BYTES + 1
    assert stored == accepted * 16
    assert refused >= turned_away
    assert rss.peak_mib < RSS_LIMIT_MIB
    assert after.status_code == 200, after.text  # the budget is given back
