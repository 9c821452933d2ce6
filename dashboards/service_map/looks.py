"""What the service map's parts share: node symbols, edge kinds, ink, font and trace types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from meshlens.read.results import Mtls

Figure = dict[str, Any]
Trace = dict[str, Any]

NODE_TYPES: Final = ("service", "database", "messaging", "external", "client")
NODE_SYMBOLS: Final[Mapping[str, str]] = {
    "service": "circle",
    "database": "square",
    "messaging": "diamond",
    "external": "hexagon",
    "client": "triangle-right",
}
OTHER_SYMBOL: Final = "circle-dot"
NODE_SIZE: Final = 20
NODE_OUTLINE: Final = "#374151"

EdgeKind = Literal["plaintext", "tls", "mutual"]
EDGE_KINDS: Final[Mapping[EdgeKind, tuple[str, str]]] = {
    "plaintext": ("dash", "plaintext edges (dashed)"),
    "tls": ("dot", "one-way TLS edges (dotted)"),
    "mutual": ("solid", "mTLS or unknown edges"),
}
"""Each edge kind's line dash and legend entry."""

FONT: Final = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
INK: Final = "#1f2937"
NEUTRAL: Final = "#9ca3af"


def type_order(types: set[str]) -> list[str]:
    """Node types in drawing and legend order: the known ones first, then the others by name."""
    return [t for t in NODE_TYPES if t in types] + sorted(types - set(NODE_TYPES))


def edge_kind(mtls: Mtls) -> EdgeKind:
    """Plaintext when any request was; else one-way TLS when any was; else mutual (or unknown)."""
    if mtls.plaintext > 0:
        return "plaintext"
    return "tls" if mtls.tls > 0 else "mutual"
