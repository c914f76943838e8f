"""What fuzzing the parsers found, each as its smallest input (tests/unit/test_fuzz_parsers.py,
tests/unit/test_fuzz_scale.py and `make fuzz` found them).

Each is a plain regression test: it failed before its fix.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.sources.authlog.journal import parse_journal_json
from exporter.sources.crowdsec import CrowdsecError, read_bouncer_config
from exporter.web.config import parse_web_config
from tests.fuzz.targets import TARGETS
from tests.fuzz.timing import LINEAR, growth, ratio, seconds

pytestmark = pytest.mark.unit


# ---- fixed -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["[" * 1000, "watchlist: " + "[" * 1000, "{a: " * 600])
def test_config_file_nested_past_the_stack_is_a_config_error(text: str) -> None:
    """PyYAML composes recursively: RecursionError escaped parse_config, and start-up died with a
    traceback instead of naming the file."""
    with pytest.raises(ConfigError, match="nested too deep"):
        parse_config(text, origin="exporter.yml")


def test_web_config_nested_past_the_stack_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"web\.yml: not valid YAML: nested too deep"):
        parse_web_config("basic_auth_users: " + "{a: " * 600, Path("/"), origin="web.yml")


def test_journal_entry_nested_past_the_stack_is_a_parse_error() -> None:
    """RecursionError escaped parse_journal_json (it caught ValueError only) and ended the journalctl
    reader's thread; an entry may be 4 MB, so 100,000 brackets are one line journalctl can print."""
    assert parse_journal_json(b"[" * 100_000) == (None, None)
    assert parse_journal_json("[" * 100_000) == (None, None)


# ---- exporter/sources/host/yamltext.py ------------------------------------------------------------

# parse_yaml built PyYAML's loader (whose reader checks the characters) before its `try`, so PyYAML's
# ReaderError escaped instead of YAMLSyntaxError.


def test_a_nul_in_the_config_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config("\0watchlist: []\n", origin="exporter.yml")


def test_a_nul_in_the_bouncer_config_is_a_crowdsec_error(tmp_path: Path) -> None:
    """The reader falls back to cscli on CrowdsecError; PyYAML's error failed the collector instead."""
    config = tmp_path / "crowdsec-firewall-bouncer.yaml"
    config.write_bytes(b"api_url: http://127.0.0.1:8080\n\0api_key: k\n")
    with pytest.raises(CrowdsecError):
        read_bouncer_config(config)


def _alias_levels(levels: int) -> bytes:
    """`a: &a [x, ...9]`, then each level a list of 9 aliases of the one before: 9**levels leaves in
    about 35 bytes a level (a YAML "billion laughs")."""
    names = [f"l{i}" for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * 9)}]"]
    lines += [f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]" for prev, name in itertools.pairwise(names)]
    return ("\n".join(lines) + "\n").encode()


def test_yaml_aliases_cost_the_text_not_the_expansion() -> None:
    """One level more is 35 bytes more (x1.2): the time may grow as much, not 9 times (repeated_key
    walked an aliased node each time it was reached: 5 levels in 200 bytes took 30 s)."""
    three, four = _alias_levels(3), _alias_levels(4)
    small = min(seconds(lambda: TARGETS["config_file"](three)) for _ in range(3))
    large = min(seconds(lambda: TARGETS["config_file"](four)) for _ in range(3))
    assert ratio(small, large) < 3


def test_flow_nesting_costs_linear_time() -> None:
    """PyYAML's scanner checks every open flow level at each token (n levels cost n**2); parse_yaml
    refuses nesting past MAX_FLOW_DEPTH before PyYAML reads the text."""
    small, large = growth(TARGETS["config_file"], lambda n: b"watchlist: " + b"[" * n, 256)
    assert ratio(small, large) < LINEAR
