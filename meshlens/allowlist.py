"""The webhook allowlist: host names and IP networks that notifications may reach although the
destination guard (`alerting.notify.destinations`) refuses private, loopback and link-local
addresses otherwise (`MESHLENS_WEBHOOK_ALLOWLIST`).

Pure parsing and matching, in the kernel so that the settings validate the entries without
importing alerting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_-]+)*$")


class AllowlistError(ValueError):
    """An allowlist entry is neither a host name nor an IP address or CIDR."""


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Destinations allowed despite the guard: host names (exact) and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Host names and IP addresses or CIDRs; `AllowlistError` names the bad entry."""
        parsed = [_entry(entry) for entry in entries]
        hosts = frozenset(entry for entry in parsed if isinstance(entry, str))
        return cls(hosts, tuple(entry for entry in parsed if not isinstance(entry, str)))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: Address) -> bool:
        plain = _unmapped(address)
        return any(plain in network for network in self.networks)


def _entry(entry: str) -> str | Network:
    text = entry.strip().lower().rstrip(".")
    if not text:
        raise AllowlistError("an empty entry: give a host name, an IP address or a CIDR")
    if "://" in text:
        raise AllowlistError(f"{entry!r}: give a host name or CIDR, not a URL")
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        if "/" in text:
            raise AllowlistError(f"{entry!r}: {_cidr_problem(text)}") from exc
        if re.fullmatch(r"[\d.]+", text):
            raise AllowlistError(f"{entry!r}: not a valid IPv4 address") from exc
    return _host_entry(entry, text)


def _cidr_problem(text: str) -> str:
    try:
        return f"host bits are set, did you mean {ipaddress.ip_network(text, strict=False)}?"
    except ValueError:
        return "not a valid CIDR (like 10.0.0.0/8 or fd00::/8)"


def _host_entry(entry: str, text: str) -> str:
    if ":" in text:
        raise AllowlistError(f"{entry!r}: give a host name without a port")
    try:
        ascii_host = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise AllowlistError(f"{entry!r}: not a valid host name") from exc
    if not _HOST_NAME.match(ascii_host):
        raise AllowlistError(f"{entry!r}: not a valid host name")
    return ascii_host


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
