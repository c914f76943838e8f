"""The golden scrape (node_exporter's end-to-end test, here): the real exporter on the fixture host of
fixture.py, scraped over HTTP, must expose exactly tests/e2e/expected.prom once golden.VOLATILE is applied.

A difference is either a regression or an intended change of the exposition: then run `make e2e-update`
and commit expected.prom with the change, so the review shows what users will see.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess

import pytest

from tests.e2e.golden import EXPECTED, normalise, scrape_fixture_host
from tests.integration.harness import require_root_and


def _diff(expected: str, actual: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=str(EXPECTED.relative_to(EXPECTED.parents[2])),
            tofile="golden scrape",
        )
    )


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.geteuid() != 0:
        pytest.skip("the golden scrape runs the exporter in a network namespace of its own: needs root")
    require_root_and("ip", "nft")  # nft: the firewall collector reads the (empty) ruleset with it
    return scrape_fixture_host(tmp_path_factory.mktemp("e2e"))


def test_exposition_is_the_golden_file(exposition: str) -> None:
    actual = normalise(exposition)
    expected = EXPECTED.read_text()
    if actual != expected:
        pytest.fail(
            "the exposition differs from the golden file (a regression, or run `make e2e-update` and "
            f"commit expected.prom with the change):\n{_diff(expected, actual)}",
            pytrace=False,
        )


def test_promtool_accepts_the_exposition(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps)")
    for text in (exposition, EXPECTED.read_text()):
        run = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_volatile_rules() -> None:
    """What the rules drop and mask, and that they leave the rest (families included) alone."""
    raw = (
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 0.52\n"
        'python_info{implementation="CPython",major="3"} 1.0\n'
        "# HELP ssh_access_collector_duration_seconds how long it took\n"
        "# TYPE ssh_access_collector_duration_seconds gauge\n"
        'ssh_access_collector_duration_seconds{collector="sshd"} 0.0042\n'
        'ssh_access_build_info{version="1.2.3"} 1.0\n'
        "ssh_access_sshd_listeners 1.0\n"
    )
    assert normalise(raw) == (
        "# HELP ssh_access_collector_duration_seconds how long it took\n"
        "# TYPE ssh_access_collector_duration_seconds gauge\n"
        'ssh_access_build_info{version="VERSION"} 1.0\n'
        "ssh_access_sshd_listeners 1.0\n"
    )
