"""A pytest plugin for validation/gpu_check.py: a timeout per test and a budget for the run.

    python -m pytest -p validation.pytest_budget --test-timeout 30 --session-budget 150 ...

``--test-timeout S``: a test whose setup and call run past S seconds fails with
:class:`TestTimeout` (SIGALRM, main thread; a test inside one long C call, such as a kernel
compilation, is stopped when that call returns; the caller's own subprocess timeout is the hard
stop). ``--session-budget S``: once S seconds have passed, no further test starts; the run ends
with the tests done so far and says so in its summary. Both 0 (the default): off.
Python code only, no other plugin needed (the GPU machine has no pytest-timeout).
"""
from __future__ import annotations

import contextlib
import signal
import time

import pytest


class TestTimeout(Exception):
    __test__ = False          # not a test class for pytest to collect


def pytest_addoption(parser):
    group = parser.getgroup("budget", "per-test timeout and session budget (validation/gpu_check.py)")
    group.addoption("--test-timeout", type=float, default=0.0, help="seconds per test (0: none)")
    group.addoption("--session-budget", type=float, default=0.0, help="seconds for the run (0: none)")


def pytest_configure(config):
    config._budget_started = time.monotonic()
    config._budget_stopped_at = None


def _on_alarm(signum, frame):
    raise TestTimeout("the test ran past --test-timeout")


def _timed_phase(item):
    """Arm SIGALRM for what is left of the item's time (only inside a phase, which pytest's
    call_and_report turns into a failed report; never inside pytest's own reporting)."""
    timeout = item.config.getoption("test_timeout")
    if timeout <= 0 or not hasattr(signal, "setitimer"):
        return None
    deadline = item.__dict__.setdefault("_budget_deadline", time.monotonic() + timeout)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TestTimeout(f"the test ran past --test-timeout ({timeout:g} s)")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, left)
    return previous


def _disarm(previous):
    if previous is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _timed(item):
    previous = _timed_phase(item)
    try:
        yield
    finally:
        _disarm(previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _timed(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _timed(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield                     # teardown is not timed: it must run for the next test to set up
    budget = item.config.getoption("session_budget")
    spent = time.monotonic() - item.config._budget_started
    if budget > 0 and spent > budget and nextitem is not None:
        item.config._budget_stopped_at = item.nodeid
        item.session.shouldstop = f"--session-budget of {budget:g} s spent after {spent:.0f} s"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config._budget_stopped_at:
        terminalreporter.write_line(f"budget: stopped after {config._budget_stopped_at} "
                                    f"(--session-budget {config.getoption('session_budget'):g} s)")
