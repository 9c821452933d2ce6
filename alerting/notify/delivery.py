"""One delivery attempt of a rendered message, classified, and the backoff between attempts.

Delivery is at-least-once, as Alertmanager's: the caller (the outbox) retries until delivered.
`deliver` classifies one attempt:
- 2xx: `delivered` (unless a 301/302/303 redirect turned the POST into a GET: the message never
  arrived, so `failed`);
- 408, 429, 5xx, timeouts, connection and DNS errors: `retry`, with `retry_after` from the
  `Retry-After` header (seconds or an HTTP date) or Discord's JSON `retry_after`, whichever is
  longer;
- other 4xx (and unfollowed 3xx), a refused destination, more than `MAX_REDIRECTS` redirects:
  `failed` for good.
Errors name the masked URL only (webhook URLs are secrets).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import anyio
import httpx
import orjson

from alerting.model import Receiver
from alerting.notify.destinations import (
    DestinationRefused,
    GuardedTransport,
    Resolver,
    check_static,
    mask_url,
    system_resolve,
)
from alerting.notify.formats import Message
from meshlens.allowlist import Allowlist

USER_AGENT = "meshlens-alerting/0.1"
MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = 10.0
"""Seconds one attempt may take in all (connect, send, answer)."""
_BODY_LIMIT = 64 * 1024
"""Bytes of an answer read (for Discord's `retry_after` and the error text)."""
_PERMANENT_ERRORS = (httpx.TooManyRedirects, httpx.UnsupportedProtocol, httpx.LocalProtocolError)
"""Errors that the same request would meet again."""


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt did. `retry_after` (seconds) is the server's wish, when it said one."""

    outcome: Outcome
    status_code: int | None
    error: str | None
    retry_after: float | None
    duration: float


def make_client(
    allowlist: Allowlist,
    *,
    resolve: Resolver = system_resolve,
    timeout: float = DEFAULT_TIMEOUT,
) -> httpx.AsyncClient:
    """The client for webhooks: every request and redirect hop goes through the SSRF guard."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allowlist, resolve=resolve),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


async def deliver(
    client: httpx.AsyncClient,
    receiver: Receiver,
    message: Message,
    *,
    allowlist: Allowlist,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (the attempt's budget, also httpx's)
) -> Attempt:
    """POST `message` to `receiver.url` once. `client` must come from `make_client`: the
    allowlist here only refuses what needs no DNS (scheme, IP literals) before sending."""
    started = time.perf_counter()
    masked = mask_url(receiver.url)

    def attempt(outcome: Outcome, error: str | None, status: int | None = None) -> Attempt:
        return Attempt(outcome, status, error, None, time.perf_counter() - started)

    try:
        check_static(receiver.url, allowlist)
        with anyio.fail_after(timeout):
            response, body = await _post(client, receiver.url, message, timeout)
    except DestinationRefused as exc:
        return attempt(Outcome.FAILED, f"destination refused: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        return attempt(Outcome.RETRY, f"no answer from {masked} within {timeout:g}s")
    except _PERMANENT_ERRORS as exc:
        return attempt(Outcome.FAILED, f"{_scrub(str(exc), receiver.url)} ({masked})")
    except httpx.HTTPError as exc:  # connection, protocol and decoding errors
        detail = _scrub(str(exc), receiver.url) or type(exc).__name__
        return attempt(Outcome.RETRY, f"cannot reach {masked}: {detail}")
    classified = _classify(response, body, masked, now=dt.datetime.now(dt.UTC))
    return Attempt(
        classified.outcome,
        classified.status_code,
        _scrub(classified.error, receiver.url) if classified.error else None,
        classified.retry_after,
        time.perf_counter() - started,
    )


async def _post(
    client: httpx.AsyncClient,
    url: str,
    message: Message,
    timeout: float,  # noqa: ASYNC109 (httpx's per-operation timeout)
) -> tuple[httpx.Response, bytes]:
    headers = {"Content-Type": message.content_type, **message.headers}
    request = client.build_request(
        "POST", url, content=message.body, headers=headers, timeout=timeout
    )
    response = await client.send(request, stream=True)
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _BODY_LIMIT:
                break
    finally:
        await response.aclose()
    return response, bytes(body[:_BODY_LIMIT])


def _classify(response: httpx.Response, body: bytes, masked: str, *, now: dt.datetime) -> Attempt:
    """The outcome of an answer (`duration` left 0)."""
    status = response.status_code
    if 200 <= status < 300:
        method = response.request.method
        if method == "POST":
            return Attempt(Outcome.DELIVERED, status, None, None, 0.0)
        error = f"a redirect turned the POST into a {method}: nothing was delivered to {masked}"
        return Attempt(Outcome.FAILED, status, error, None, 0.0)
    error = f"HTTP {status} from {masked}" + (f": {_snippet(body)}" if body.strip() else "")
    if status in (408, 429) or status >= 500:
        return Attempt(Outcome.RETRY, status, error, _retry_after(response, body, now), 0.0)
    return Attempt(Outcome.FAILED, status, error, None, 0.0)


def _retry_after(response: httpx.Response, body: bytes, now: dt.datetime) -> float | None:
    header = parse_retry_after(response.headers.get("Retry-After"), now=now)
    found = [wait for wait in (header, _json_retry_after(body)) if wait is not None]
    return max(found) if found else None


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return _seconds_until(value, now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: dt.datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _json_retry_after(body: bytes) -> float | None:
    """Discord answers 429 with `{"retry_after": <seconds, float>, ...}`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    wait = data.get("retry_after") if isinstance(data, dict) else None
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
        return None
    return max(0.0, float(wait))


def backoff(
    attempt_number: int,
    retry_after: float | None = None,
    *,
    base: float = 5,
    cap: float = 600,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt `attempt_number + 1`: exponential with full jitter (uniform in
    `[0, min(cap, base * 2**(attempt_number - 1))]`), never less than `retry_after`."""
    exponent = min(max(attempt_number, 1) - 1, 60)
    ceiling = min(cap, base * 2.0**exponent)
    jittered = (rng.uniform if rng else random.uniform)(0, ceiling)
    return max(jittered, retry_after or 0.0)


def _snippet(body: bytes) -> str:
    text = re.sub(r"\s+", " ", body.decode("utf-8", errors="replace")).strip()
    return text if len(text) <= 200 else text[:199] + "…"


def _scrub(text: str, url: str) -> str:
    """`text` without the secret parts of `url`, should an error message quote them."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    for secret in sorted({url, path} - {"", "/"}, key=len, reverse=True):
        text = text.replace(secret, mask_url(url))
    return text
