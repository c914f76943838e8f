"""Test markers by directory, and REQUIRE_INTEGRATION: in CI a skipped integration test is a failure."""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from pathlib import Path

import pytest

REQUIRE_INTEGRATION = os.environ.get("REQUIRE_INTEGRATION") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        # tests/e2e: the golden scrape runs the exporter in a network namespace of its own (root).
        if "integration" in parts or "e2e" in parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in parts:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if REQUIRE_INTEGRATION and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = f"skipped while REQUIRE_INTEGRATION=1: {report.longrepr}"
    return report


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Generator[None, None, None]:
    """A test that runs a command's main sets up the root logger on the stderr it sees (pytest's capture,
    closed after the test): later tests' log lines then hit a closed file. Each test leaves it as found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
