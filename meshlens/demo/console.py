"""What the demo prints: progress on stdout, problems on stderr, each line flushed at once."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """A line of progress (stdout)."""
    print(line, flush=True)


def complain(line: str) -> None:
    """A problem (stderr), prefixed with `meshlens demo:`."""
    print(f"meshlens demo: {line}", file=sys.stderr, flush=True)
