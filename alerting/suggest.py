"""Did-you-mean suggestions for mistyped names (keys of a rules file, template functions)."""

from __future__ import annotations

import difflib
from collections.abc import Collection


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """` (did you mean 'x'?)` for the choice closest to `word`; empty when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
