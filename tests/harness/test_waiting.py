"""The one wait of the tests and benchmarks (harness.waiting.wait_until)."""

from __future__ import annotations

import itertools

import pytest

from harness.waiting import wait_until


def test_the_first_truthy_value_is_returned() -> None:
    answers = iter([None, 0, [], {"edges": 3}])
    assert wait_until(lambda: next(answers), timeout=5, what="edges", every=0) == {"edges": 3}


def test_a_timeout_says_what_was_awaited_and_how_long() -> None:
    with pytest.raises(AssertionError, match=r"^waited 0.05 s for the first round$"):
        wait_until(lambda: False, timeout=0.05, what="the first round", every=0.01)


def test_a_callable_what_describes_the_state_reached() -> None:
    calls = itertools.count(1)
    with pytest.raises(AssertionError, match=r"for 3 requests, got 0 after \d+ checks$"):
        wait_until(
            lambda: next(calls) > 10**9,
            timeout=0.05,
            what=lambda: f"3 requests, got 0 after {next(calls) - 1} checks",
            every=0.01,
        )


def test_an_error_of_the_check_is_not_waited_out() -> None:
    def exited() -> bool:
        raise RuntimeError("meshlens exited early")

    with pytest.raises(RuntimeError, match="exited early"):
        wait_until(exited, timeout=60, what="meshlens to become ready")
