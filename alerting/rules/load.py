"""Loading a rules file (`MESHLENS_RULES_FILE`): its text, the file, and the watcher that
reloads it when it changes (the service keeps the last valid rules when a change is invalid)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alerting.rules.positions import parse_yaml
from alerting.rules.results import Problem, RulesFile, RulesFileError
from alerting.rules.validate import Checker


def load_rules_text(text: str, source: str = "<rules>") -> RulesFile:
    """Rules and receivers of a rules file's `text`; RulesFileError lists every problem."""
    checker = Checker()
    root = parse_yaml(text, checker.problems)
    result = checker.rules_file(root, source) if root is not None else RulesFile(source=source)
    checker.raise_if_any(source)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return RulesFile(result.rules, result.receivers, source, digest)


def load_rules_file(path: str | Path) -> RulesFile:
    """`load_rules_text` of the file at `path`; OSError when it cannot be read."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(line, column, "the file is not UTF-8 text")
        raise RulesFileError([problem], str(path)) from None
    return load_rules_text(text, str(path))


class RulesFileWatcher:
    """Reloads a rules file when its content changes (`MESHLENS_RULES_FILE`).

    Call `poll()` now and then: it answers the new `RulesFile` when the text changed since the
    last poll (the first poll always reads), None when not. A changed file that is invalid
    raises RulesFileError, an unreadable one OSError, once per change: the caller keeps the
    rules it has and logs; the next change is read again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: str | None = None

    def poll(self) -> RulesFile | None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            state = f"error: {exc}"
            if state == self._seen:
                return None
            self._seen = state
            raise
        state = hashlib.sha256(data).hexdigest()
        if state == self._seen:
            return None
        self._seen = state
        return load_rules_file(self.path)
