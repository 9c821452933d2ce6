"""Sending notifications to real HTTP servers: outcomes, Retry-After, the SSRF guard, masking."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import random
import socket
from collections.abc import Sequence

import pytest

from alerting.model import Alert, Notification, Receiver, ReceiverType
from alerting.notify.delivery import (
    USER_AGENT,
    Attempt,
    Outcome,
    backoff,
    deliver,
    make_client,
    parse_retry_after,
)
from alerting.notify.destinations import (
    DestinationRefused,
    DestinationUnresolved,
    Resolver,
    check_destination,
    mask_url,
    refusal,
    system_resolve,
)
from alerting.notify.formats import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Message,
    render,
    verify_signature,
)
from harness.webhook_sink import Reply, WebhookSink
from meshlens.allowlist import Allowlist, AllowlistError

LOCAL = Allowlist.parse(["127.0.0.1"])
NOBODY = Allowlist()
MESSAGE = Message(b'{"text": "hello"}', "application/json", {"Idempotency-Key": "k-1"})
SECRET = "secret-token"
"""The sinks' URLs end with it: no error message may show it."""


def send(
    url: str,
    *,
    allowlist: Allowlist = LOCAL,
    resolve: Resolver = system_resolve,
    timeout: float = 3.0,
    message: Message = MESSAGE,
) -> Attempt:
    async def attempt() -> Attempt:
        async with make_client(allowlist, resolve=resolve) as client:
            hook = Receiver("hook", ReceiverType.WEBHOOK, url)
            return await deliver(client, hook, message, allowlist=allowlist, timeout=timeout)

    return asyncio.run(attempt())


def resolver(table: dict[str, Sequence[str]]) -> Resolver:
    def resolve(host: str) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def refused(attempt: Attempt) -> bool:
    return attempt.outcome is Outcome.FAILED and "destination refused" in (attempt.error or "")


# --- Outcomes -----------------------------------------------------------------------------------


def test_a_2xx_is_delivered_with_the_message_as_sent() -> None:
    with WebhookSink([200]) as sink:
        attempt = send(sink.url)
        (request,) = sink.wait_for(1)
    assert attempt.outcome is Outcome.DELIVERED
    assert attempt.status_code == 200
    assert attempt.error is None
    assert attempt.duration > 0
    assert request.method == "POST"
    assert request.path == "/hooks/T0123/B0456/secret-token"
    assert request.body == MESSAGE.body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "k-1"
    assert request.headers["user-agent"] == USER_AGENT


def test_a_signed_webhook_verifies_at_the_receiver() -> None:
    now = dt.datetime.now(dt.UTC)
    alert = Alert({"alertname": "A"}, {}, "firing", now, None, 1.0, "https://m.example/a")
    note = Notification("r", "g", {"alertname": "A"}, "firing", (alert,), "https://m.example", "k")
    hook = Receiver("r", ReceiverType.WEBHOOK, "https://unused.example/", "s3cret")
    message = render(hook, note, now=now)
    with WebhookSink() as sink:
        assert send(sink.url, message=message).outcome is Outcome.DELIVERED
        (request,) = sink.wait_for(1)
    timestamp, signature = (
        request.headers[TIMESTAMP_HEADER.lower()],
        request.headers[SIGNATURE_HEADER.lower()],
    )
    assert verify_signature("s3cret", timestamp, request.body, signature, now=now)
    assert request.json()["version"] == "4"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (403, Outcome.FAILED),
        (404, Outcome.FAILED),
        (410, Outcome.FAILED),
    ],
)
def test_status_codes_are_classified(status: int, outcome: Outcome) -> None:
    with WebhookSink([status]) as sink:
        attempt = send(sink.url)
    assert attempt.outcome is outcome
    assert attempt.status_code == status
    if outcome is not Outcome.DELIVERED:
        assert f"HTTP {status} from http://127.0.0.1:{sink.port}/hooks/T…" in (attempt.error or "")


def test_500_500_200_is_delivered_on_the_third_attempt_with_one_idempotency_key() -> None:
    with WebhookSink([500, 500, 200]) as sink:
        outcomes = [send(sink.url).outcome for _ in range(3)]
        requests = sink.wait_for(3)
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DELIVERED]
    assert {r.headers["idempotency-key"] for r in requests} == {"k-1"}


def test_the_error_quotes_the_answer_but_never_the_url() -> None:
    answer = Reply(400, {}, b'{"error": "invalid_payload"}\n')
    with WebhookSink([answer]) as sink:
        attempt = send(sink.url)
    assert attempt.error is not None
    assert 'invalid_payload"}' in attempt.error
    assert SECRET not in attempt.error


def test_429_with_retry_after_seconds() -> None:
    with WebhookSink([Reply(429, {"Retry-After": "7"})]) as sink:
        attempt = send(sink.url)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.retry_after == 7.0


def test_503_with_retry_after_as_an_http_date() -> None:
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), True)
    with WebhookSink([Reply(503, {"Retry-After": later})]) as sink:
        attempt = send(sink.url)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.retry_after is not None
    assert 25 <= attempt.retry_after <= 31


def test_discord_style_429_with_a_json_retry_after() -> None:
    answer = Reply.json(429, {"message": "You are being rate limited.", "retry_after": 1.25})
    with WebhookSink([answer]) as sink:
        attempt = send(sink.url)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.retry_after == 1.25


def test_the_longer_of_header_and_json_retry_after_wins() -> None:
    answer = Reply.json(429, {"retry_after": 1.25, "global": False}, {"Retry-After": "2"})
    with WebhookSink([answer]) as sink:
        assert send(sink.url).retry_after == 2.0


def test_a_slow_answer_is_a_timeout_to_retry() -> None:
    with WebhookSink([Reply(200, delay=10)]) as sink:
        attempt = send(sink.url, timeout=0.3)
        sink.wait_for(1)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.status_code is None
    assert attempt.error == f"no answer from http://127.0.0.1:{sink.port}/hooks/T… within 0.3s"
    assert attempt.duration < 2


def test_a_refused_connection_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/{SECRET}"
    attempt = send(url)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.error is not None
    assert attempt.error.startswith(f"cannot reach {mask_url(url)}: ")
    assert SECRET not in attempt.error


def test_a_name_that_does_not_resolve_is_retried() -> None:
    attempt = send(f"https://gone.example/{SECRET}", resolve=resolver({}))
    assert attempt.outcome is Outcome.RETRY
    assert "gone.example does not resolve" in (attempt.error or "")


# --- The SSRF guard -----------------------------------------------------------------------------


def test_loopback_is_refused_without_connecting_unless_allowlisted() -> None:
    with WebhookSink() as sink:
        attempt = send(sink.url, allowlist=NOBODY)
        assert refused(attempt)
        assert attempt.error == (
            f"destination refused: http://127.0.0.1:{sink.port}/hooks/T…: "
            "127.0.0.1 is loopback and not in the allowlist"
        )
        assert sink.connections == 0
        for entries in (["127.0.0.1"], ["127.0.0.0/8"], ["10.0.0.0/8", "127.0.0.1/32"]):
            assert send(sink.url, allowlist=Allowlist.parse(entries)).outcome is Outcome.DELIVERED
        assert len(sink.wait_for(3)) == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://0.0.0.0/hook",
        "ftp://hooks.example/hook",
        "file:///etc/passwd",
    ],
)
def test_internal_literals_and_other_schemes_are_refused(url: str) -> None:
    attempt = send(url, allowlist=LOCAL, resolve=resolver({}))
    assert refused(attempt), attempt
    with pytest.raises(DestinationRefused):
        check_destination(url, LOCAL, resolver({}))


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolve = resolver({"hooks.internal.test": ["10.1.2.3"]})
    attempt = send(f"https://hooks.internal.test/{SECRET}", resolve=resolve)
    assert refused(attempt)
    assert "hooks.internal.test resolves to 10.1.2.3, which is private" in (attempt.error or "")
    assert SECRET not in (attempt.error or "")


def test_localhost_is_refused_through_the_system_resolver() -> None:
    with WebhookSink() as sink:
        attempt = send(sink.url.replace("127.0.0.1", "localhost"), allowlist=NOBODY)
        assert refused(attempt)
        assert "localhost resolves to" in (attempt.error or "")
        assert sink.connections == 0


def test_every_address_of_a_name_must_pass() -> None:
    resolve = resolver({"mixed.test": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(DestinationRefused, match=r"resolves to 127\.0\.0\.1, which is loopback"):
        check_destination("https://mixed.test/", NOBODY, resolve)


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1"])
def test_odd_spellings_of_loopback_are_refused(host: str) -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        check_destination(f"http://{host}/", NOBODY)


def test_the_connection_goes_to_the_checked_address() -> None:
    """The guard resolves once and connects to that address: a `.test` name that only the
    guard's resolver knows reaches the sink, with the name kept in the Host header."""
    with WebhookSink() as sink:
        resolve = resolver({"sink.test": ["127.0.0.1"]})
        url = f"http://sink.test:{sink.port}/hooks/{SECRET}"
        assert send(url, allowlist=LOCAL, resolve=resolve).outcome is Outcome.DELIVERED
        named = Allowlist.parse(["SINK.test"])
        assert send(url, allowlist=named, resolve=resolve).outcome is Outcome.DELIVERED
        assert {r.headers["host"] for r in sink.wait_for(2)} == {f"sink.test:{sink.port}"}


def test_dns_rebinding_after_the_check_is_refused_at_connect() -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    def rebinding(host: str) -> Sequence[str]:
        return next(answers)

    with WebhookSink() as sink:
        url = f"http://rebind.test:{sink.port}/hooks/{SECRET}"
        check_destination(url, NOBODY, rebinding)  # the name looked public when configured
        attempt = send(url, allowlist=NOBODY, resolve=rebinding)
        assert refused(attempt)
        assert "rebind.test resolves to 127.0.0.1" in (attempt.error or "")
        assert sink.connections == 0


def test_a_redirect_to_a_non_allowlisted_address_is_refused_before_connecting() -> None:
    with WebhookSink(host="127.0.0.2") as inside, WebhookSink() as sink:
        sink.push(Reply.redirect(inside.url))
        attempt = send(sink.url, allowlist=LOCAL)
        assert refused(attempt)
        assert f"http://127.0.0.2:{inside.port}/hooks/T…: 127.0.0.2 is loopback" in (
            attempt.error or ""
        )
        assert SECRET not in (attempt.error or "")
        assert len(sink.requests) == 1
        assert inside.connections == 0


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "gopher://10.0.0.1/"],
)
def test_redirects_to_internal_targets_are_refused(target: str) -> None:
    with WebhookSink([Reply.redirect(target, 302)]) as sink:
        attempt = send(sink.url, allowlist=LOCAL)
    assert refused(attempt), attempt


def test_an_allowed_307_redirect_is_followed_with_the_body() -> None:
    with WebhookSink(host="127.0.0.2") as inside, WebhookSink() as sink:
        sink.push(Reply.redirect(inside.url, 307))
        attempt = send(sink.url, allowlist=Allowlist.parse(["127.0.0.0/8"]))
        (forwarded,) = inside.wait_for(1)
    assert attempt.outcome is Outcome.DELIVERED
    assert forwarded.method == "POST"
    assert forwarded.body == MESSAGE.body


def test_a_redirect_that_drops_the_body_is_not_a_delivery() -> None:
    with WebhookSink() as sink:
        sink.push(Reply.redirect(sink.url_for("/moved"), 302))
        attempt = send(sink.url)
        assert [r.method for r in sink.wait_for(2)] == ["POST", "GET"]
    assert attempt.outcome is Outcome.FAILED
    assert "turned the POST into a GET" in (attempt.error or "")


def test_no_more_than_three_redirects_are_followed() -> None:
    with WebhookSink() as sink:
        sink.push(*[Reply.redirect(sink.url_for(f"/hop{i}")) for i in range(1, 5)])
        attempt = send(sink.url)
        assert len(sink.requests) == 4
    assert attempt.outcome is Outcome.FAILED
    assert "redirects" in (attempt.error or "")


# --- Destinations: the pieces -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:a9fe:a9fe::", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("192.0.2.1", "private"),
    ],
)
def test_internal_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
    check_destination(f"https://{'[' + address + ']' if ':' in address else address}/", NOBODY)


def test_the_allowlist_matches_names_exactly_and_addresses_by_network() -> None:
    allow = Allowlist.parse(["Hooks.Internal.Example.", "10.0.0.0/8", "fd00::/8"])
    resolve = resolver(
        {
            "hooks.internal.example": ["192.168.9.9"],
            "other.internal.example": ["10.9.9.9"],
            "sub.hooks.internal.example": ["192.168.9.9"],
            "v6.example": ["fd00::5"],
        }
    )
    check_destination("https://HOOKS.internal.example/x", allow, resolve)
    check_destination("https://other.internal.example/x", allow, resolve)
    check_destination("https://v6.example/x", allow, resolve)
    check_destination("http://[::ffff:10.1.1.1]/x", allow, resolve)
    with pytest.raises(DestinationRefused):
        check_destination("https://sub.hooks.internal.example/x", allow, resolve)
    with pytest.raises(DestinationUnresolved):
        check_destination("https://nowhere.example/x", allow, resolve)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("https://hooks.example/x", "not a URL"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("300.1.1.1", "not a valid IPv4 address"),
        ("hooks.example:8443", "without a port"),
        ("bad host!", "not a valid host name"),
        ("  ", "empty entry"),
    ],
)
def test_bad_allowlist_entries_are_named(entry: str, message: str) -> None:
    with pytest.raises(AllowlistError, match=message) as caught:
        Allowlist.parse(["127.0.0.1", entry])
    assert entry.strip() == "" or repr(entry) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T0…",
        ),
        (
            "https://discord.com/api/webhooks/123456789/abcdefSECRET",
            "https://discord.com/api/webh…",
        ),
        ("https://user:pw@example.com:8443/abc123?token=x", "https://example.com:8443/a…"),
        ("https://example.com/?token=x", "https://example.com/…"),
        ("https://example.com/", "https://example.com/"),
        ("http://[::1]:9/abcdefgh", "http://[::1]:9/ab…"),
        ("http://[::1/", "<invalid URL>"),
    ],
)
def test_urls_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --- Backoff and Retry-After --------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt_number in range(1, 12):
        ceiling = min(600, 5 * 2 ** (attempt_number - 1))
        delays = [backoff(attempt_number, None, rng=rng) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.8
        assert min(delays) < ceiling * 0.2
    assert backoff(10_000, None, rng=rng) <= 600
    assert backoff(3, None, rng=random.Random(1)) == backoff(3, None, rng=random.Random(1))


def test_backoff_waits_at_least_retry_after() -> None:
    rng = random.Random(1)
    assert all(backoff(1, 30.0, rng=rng) >= 30.0 for _ in range(50))
    assert backoff(1, 3600.0, base=1, cap=10, rng=rng) == 3600.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("-5", 0.0),
        ("nan", None),
        ("soon", None),
        (None, None),
        ("Wed, 01 May 2024 12:01:00 GMT", 60.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=now) == seconds
