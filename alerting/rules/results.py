"""What loading rules answers: the valid content of a rules file, or every problem found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alerting.model import Receiver, Rule


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong. `line` and `column` are 1-based in YAML text and 0 for JSON objects;
    `path` (`rules[2].for`, or `for` within one rule object) says where in either case."""

    line: int
    column: int
    message: str
    path: str = ""

    def format(self, source: str) -> str:
        """`source:line:column: message` (compiler style), or `path: message` without a line."""
        if self.line:
            return f"{source}:{self.line}:{self.column}: {self.message}"
        return f"{self.path}: {self.message}" if self.path else self.message


class RulesFileError(ValueError):
    """Rules or receivers that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("\n".join(problem.format(source) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class RulesFile:
    """The valid content of a rules file (every rule and receiver has `origin="file"`)."""

    rules: tuple[Rule, ...] = ()
    receivers: tuple[Receiver, ...] = ()
    source: str = ""
    digest: str = ""
    """SHA-256 of the text: a reload that finds the same digest changes nothing."""
