"""Where a webhook may go: the SSRF guard, and masking of webhook URLs (they are secrets).

A destination is refused unless its scheme is http or https and every address its host stands
for is public: loopback, link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
private (10/8, 172.16/12, 192.168/16, fc00::/7), carrier-grade NAT (100.64/10), unspecified,
multicast, reserved and other non-global addresses are refused, also when written as IPv4-mapped,
6to4 or NAT64 IPv6 addresses. The `Allowlist` (host names, exact and case-insensitive, or CIDRs)
lets an operator reach an internal receiver on purpose.

How the check holds after DNS, on redirects and against DNS rebinding (`GuardedTransport`):
- the transport's network backend resolves the host itself, checks *all* the addresses, then
  connects to one of those checked addresses (the IP is pinned; TLS still verifies the
  certificate for, and sends SNI with, the host name), so no second lookup can swap in another
  address between check and connect;
- httpx sends each redirect hop through the transport as a new request, so every hop's scheme and
  addresses are checked before anything connects; `delivery.make_client` allows 3 redirects;
- the transport ignores proxy variables (a proxy would connect for us; only SSL_CERT_FILE and
  SSL_CERT_DIR are read, for receivers behind a private CA).

Residual risks: a pooled keep-alive connection is reused for its origin without a new lookup (it
goes to the address checked when it opened); an allowlisted host name is trusted whatever it
resolves to; an allowlisted public receiver can still be made to reach internal services if it
itself forwards requests; and the swap of httpx's connection pool (`_pool`) relies on httpx
internals (tests pin the behaviour, so an upgrade that breaks it fails them).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from meshlens.allowlist import Address, Allowlist

Resolver = Callable[[str], Sequence[str]]
"""Host name -> IP address strings (blocking; the transport calls it in a worker thread)."""

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = ipaddress.IPv4Address("169.254.169.254")
LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=5)


class DestinationError(Exception):
    """Base of the destination errors (refused or unresolved)."""


class DestinationRefused(DestinationError):
    """Permanent: the URL may not be sent to. `url` is masked."""

    def __init__(self, reason: str, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}" if self.url else self.reason


class DestinationUnresolved(DestinationError):
    """Transient: the host name did not resolve (retry later)."""


def refusal(address: Address) -> str | None:
    """Why `address` may not be connected to, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (reason := refusal(inner)):
            return f"{reason} ({inner} inside {address})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address == _METADATA, "link-local (cloud metadata)"),
        (address.is_link_local, "link-local"),
        (address in _CGNAT, "carrier-grade NAT"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def system_resolve(host: str) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def permitted_addresses(host: str, allowlist: Allowlist, resolve: Resolver) -> list[str]:
    """The addresses to connect to for `host`, all checked; raises when any is refused."""
    literal = _literal(host)
    if literal is None:
        try:
            addresses = list(resolve(host))
        except (OSError, UnicodeError) as exc:
            raise DestinationUnresolved(f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise DestinationUnresolved(f"{host} does not resolve")
    else:
        addresses = [host]
    if allowlist.allows_host(host):
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text)
        if allowlist.allows_address(address):
            continue
        reason = refusal(address)
        if reason is not None:
            what = text if literal is not None else f"{host} resolves to {text}, which"
            raise DestinationRefused(f"{what} is {reason} and not in the allowlist")
    return addresses


def check_url(url: str) -> str:
    """The host of `url` (as httpx will connect to it) when its scheme is http(s)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DestinationRefused("not a valid URL", mask_url(url)) from exc
    return _checked_host(parsed)


def _checked_host(url: httpx.URL) -> str:
    if url.scheme not in ("http", "https"):
        raise DestinationRefused(f"scheme {url.scheme!r} is not http or https", mask_url(str(url)))
    host = url.raw_host.decode("ascii")
    if not host:
        raise DestinationRefused("the URL has no host", mask_url(str(url)))
    return host


def check_destination(url: str, allowlist: Allowlist, resolve: Resolver = system_resolve) -> None:
    """Raise `DestinationRefused` unless `url` is http(s) to public (or allowlisted) addresses,
    `DestinationUnresolved` when its host does not resolve. Blocks on DNS."""
    host = check_url(url)
    try:
        permitted_addresses(host, allowlist, resolve)
    except DestinationRefused as exc:
        exc.url = mask_url(url)
        raise


def check_static(url: str, allowlist: Allowlist) -> None:
    """What can be refused without DNS: the scheme and IP literal hosts."""
    if _literal(check_url(url)) is not None:
        check_destination(url, allowlist)


def mask_url(url: str) -> str:
    """`scheme://host[:port]/` and the first few characters of the path, then `…`."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<invalid URL>"
    host = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme}://{host}{f':{port}' if port else ''}/"
    path = parts.path.lstrip("/")
    if not path and not parts.query and not parts.fragment:
        return origin
    return origin + path[: min(11, len(path) // 4)] + "…"


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address (never the name)."""

    def __init__(self, allowlist: Allowlist, resolve: Resolver) -> None:
        self._allowlist = allowlist
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, timeout)
        *others, last = addresses
        for address in others:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(last, port, timeout, local_address, socket_options)

    async def _addresses(self, host: str, seconds: float | None) -> list[str]:
        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(
                    permitted_addresses,
                    host,
                    self._allowlist,
                    self._resolve,
                    abandon_on_cancel=True,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except DestinationUnresolved as exc:
            raise httpcore.ConnectError(str(exc)) from exc

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets are not destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that checks every request (each redirect hop too) and pins the
    checked address. Raises `DestinationRefused` (with the hop's masked URL)."""

    def __init__(
        self,
        allowlist: Allowlist,
        *,
        resolve: Resolver = system_resolve,
        limits: httpx.Limits = LIMITS,
    ) -> None:
        ssl_context = httpx.create_ssl_context()  # honours SSL_CERT_FILE and SSL_CERT_DIR
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(  # pins addresses: see the module docstring
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allowlist, resolve),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _checked_host(request.url)
        try:
            return await super().handle_async_request(request)
        except DestinationRefused as exc:
            exc.url = mask_url(str(request.url))
            raise
