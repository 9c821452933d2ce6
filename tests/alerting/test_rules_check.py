"""`meshlens rules check FILE...` as a user runs it: exit codes and `FILE:LINE:COLUMN:` lines."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from harness.repo import REPO
from tests.support import run_meshlens

RULES = Path("tests") / "testdata" / "rules"  # relative: the output names files as given
PROBLEM_LINE = re.compile(r"(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)")


def check(
    *files: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_meshlens("rules", "check", *map(str, files), env=env)


def test_a_valid_file_passes_with_a_summary() -> None:
    result = check(RULES / "example.yaml")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{RULES / 'example.yaml'}: 7 rules, 3 receivers: OK\n"


def test_every_problem_is_printed_with_file_line_and_column() -> None:
    path = RULES / "bad.yaml"
    result = check(path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    matches = [PROBLEM_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    expected_lines = [
        number
        for number, text in enumerate((REPO / path).read_text().splitlines(), 1)
        if "# <-" in text
    ]
    assert [int(match["line"]) for match in matches if match] == expected_lines
    assert {match["file"] for match in matches if match} == {str(path)}
    assert lines[0] == (
        f"{path}:4:11: type: 'slak' is not one of slack, mattermost, discord, teams, webhook "
        "(did you mean 'slack'?)"
    )
    assert f"{path}:8:10: url must start with https:// (or http://)" in lines
    assert f"{path}:21:5: unknown key 'severty' in a rule (did you mean 'severity'?)" in lines
    assert result.stderr == f"meshlens: {path}: {len(expected_lines)} problems\n"


def test_a_yaml_syntax_error_has_its_line() -> None:
    path = RULES / "syntax_error.yaml"
    result = check(path)
    assert result.returncode == 1
    assert result.stdout == (
        f"{path}:6:18: YAML: while scanning a block scalar: expected a comment or a line break, "
        """but found '0': quote the condition, as in condition: "> 0.05"\n"""
    )


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = check(missing)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"meshlens: cannot read {missing}: No such file or directory\n"


def test_several_files_are_checked_and_the_worst_exit_code_wins(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = check(RULES / "example.yaml", RULES / "syntax_error.yaml")
    assert result.returncode == 1
    assert result.stdout.startswith(f"{RULES / 'example.yaml'}: 7 rules, 3 receivers: OK\n")
    assert f"{RULES / 'syntax_error.yaml'}:6:18: " in result.stdout
    assert check(RULES / "example.yaml", missing).returncode == 2


def test_settings_do_not_matter_to_rules_check() -> None:
    env = {**os.environ, "MESHLENS_OTLP_HTTP_PORT": "ninety", "MESHLENS_EVAL_INTERVAL": "soon"}
    assert check(RULES / "example.yaml", env=env).returncode == 0


def test_rules_without_an_action_shows_usage() -> None:
    result = run_meshlens("rules")
    assert result.returncode == 2
    assert "check" in result.stderr
