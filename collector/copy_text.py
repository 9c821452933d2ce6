"""Span rows as PostgreSQL COPY text, formatted where they are decoded.

When decoding runs in a worker process, the worker sends the server the COPY text of its spans
(one bytes object) instead of thousands of row tuples: pickling rows cost the server more than
writing them. The format is COPY's default text format: tab-separated, `\\N` for NULL, bytea as
`\\x` hex, and backslash, tab, newline and carriage return escaped in text.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.rows import SpanRow

_NEEDS_ESCAPE = ("\\", "\t", "\n", "\r")


def _text(value: str) -> str:
    if any(char in value for char in _NEEDS_ESCAPE):
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def span_copy_text(rows: Iterable[SpanRow]) -> bytes:
    """COPY text of span rows, in `collector.rows.SPAN_COLUMNS` order."""
    lines = [
        "\t".join(
            (
                "\\\\x" + r[0].hex(),
                "\\\\x" + r[1].hex(),
                "\\\\x" + r[2].hex() if r[2] else "\\N",
                str(r[3]),
                _text(r[4]),
                _text(r[5]),
                _text(r[6]),
                _text(r[7]),
                str(r[8]),
                str(r[9]),
                str(r[10]),
                str(r[11]),
                _text(r[12]),
                _text(r[13]),
                "\\N" if r[14] is None else _text(r[14]),
                "\\N" if r[15] is None else str(r[15]),
                "\\N" if r[16] is None else _text(r[16]),
            )
        )
        for r in rows
    ]
    lines.append("")
    return "\n".join(lines).encode()
