"""Validation of rules and receivers, every problem reported with where it is.

- `fields`: the checks every part shares (mappings, unknown keys, texts, choices, durations);
- `rule` and `receiver`: one rule, one receiver;
- `file`: a whole file (`Checker`, which has every check).
"""

from alerting.rules.validate.file import Checker

__all__ = ["Checker"]
