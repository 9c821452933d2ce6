"""Where the repository is: the tests and the benchmarks run commands and read files from it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
