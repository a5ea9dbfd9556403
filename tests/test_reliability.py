"""The short reliability suite (issue 7) under pytest: one test per scenario, in order.

Each test runs one scenario of ``tests/reliability`` in its short form and fails unless
every fault injected was survived, every bad input answered cleanly and no event lost (the
row's reasons are the assertion message). The scenarios share one work folder so that the
secrets scenario scans everything the others wrote and received: it runs the ones that have
not run yet first, so the order of the tests (``pytest-randomly``) does not matter. The full suite (more
kills, cycles, examples and a longer soak) is ``python benchmarks/reliability.py``; this is
``python benchmarks/reliability.py --short``. Skip it with ``-m "not reliability"``.
"""

from __future__ import annotations

import sys

import pytest
from reliability.core import SCENARIOS, new_context, run_scenario

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the suite uses SIGKILL, /proc and setpriv/chattr (Linux)"),
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    ctx = new_context(short=True, seed=20250607,
                      workdir=tmp_path_factory.mktemp("reliability"))
    ctx.watch.install()
    try:
        yield ctx
    finally:
        ctx.watch.uninstall()
        for db in ctx.workdir.rglob("*.db*"):  # tens of MB each; the logs stay for a look
            db.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def results():
    return {}  # scenario -> its rows: each scenario runs once per module, in any test order


def scenario_rows(suite, results, name):
    if name not in results:
        results[name] = run_scenario(suite, name)
    return results[name]


def check(rows):
    assert rows
    failed = {row.scenario: row.failures or [f"{row.ok}/{row.tried}, lost {row.lost}"]
              for row in rows if not row.passed}
    assert not failed, failed
    for row in rows:
        assert row.ok == row.tried > 0 and not row.lost


@pytest.mark.parametrize("name", [name for name in SCENARIOS if name != "secrets"])
def test_scenario(suite, results, name):
    check(scenario_rows(suite, results, name))


def test_secrets_scan_everything_the_other_scenarios_left(suite, results):
    # in any order (pytest-randomly) or alone: the others first, so there is all to scan
    for name in SCENARIOS:
        if name != "secrets":
            scenario_rows(suite, results, name)
    check(scenario_rows(suite, results, "secrets"))
