"""docs/contracts.md, the page outside users read for what they may rely on, held to the code: the
alerts the rules ship, the commands of the subcommand table, every flag it names accepted by its command,
and the JSON keys and status words the commands really print."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.__main__ import SUBCOMMANDS, main
from exporter.check import ABSENT, DISABLED, FAILS, WORKS
from tests.builders import wrapped_sshd_host

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = (ROOT / "docs/contracts.md").read_text()
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"


def section(title: str, level: str = "##") -> str:
    """The text under `## title` (or `### title`) up to the next heading of that level or above."""
    start = CONTRACTS.index(f"\n{level} {title}\n")
    rest = CONTRACTS[start + len(level) + len(title) + 3 :]
    ends = [m.start() for m in re.finditer(rf"^#{{2,{len(level)}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def ticked(text: str, pattern: str) -> set[str]:
    return set(re.findall(rf"`({pattern})`", text))


def test_the_alerts_listed_are_the_alerts_shipped() -> None:
    shipped = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    listed = ticked(section("Alerts"), r"SshAccess\w+")
    assert listed == shipped  # and test_deploy holds the rules to its REQUIRED_ALERTS
    runbook = (ROOT / "docs/runbook.md").read_text()
    assert [alert for alert in sorted(listed) if alert not in runbook] == []


def test_the_commands_listed_are_the_subcommand_table() -> None:
    commands = section("Commands")
    named = set(re.findall(r"^### (\w+)$", commands, re.MULTILINE))
    assert named == {"serve", *SUBCOMMANDS}
    assert ticked(commands.split("###", 1)[0], r"\w+") >= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", ["serve", *SUBCOMMANDS])
def test_every_flag_named_is_accepted_by_its_command(command: str) -> None:
    flags = ticked(section(command, "###"), r"--[a-z][\w.-]*")
    argv = [] if command == "serve" else [command]
    run = subprocess.run(
        [sys.executable, "-m", "exporter", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    offered = set(re.findall(r"--[a-z][\w.-]*", run.stdout))
    assert sorted(flags - offered) == []


def test_check_prints_the_four_words() -> None:
    assert ticked(section("check", "###"), r"[a-z]+") >= {WORKS, ABSENT, FAILS, DISABLED}


def test_diagnose_json_has_the_keys_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = wrapped_sshd_host(tmp_path, "sshd: 192.0.2.11\n")
    assert main(["diagnose", "192.0.2.11", "--json", *flags, "--no-collector.fail2ban"]) == 1
    found = json.loads(capsys.readouterr().out)
    text = section("diagnose", "###").split("`--json` keys:", 1)[1].split("`--fleet --json` keys:")[0]
    listed = ticked(text, r"[a-z_]+")
    shown = (
        set(found)
        | {key for layer in found["layers"] for key in layer}
        | set(found["host"])
        | {key for item in found["unread"] for key in item}
        | set(found["outcome"].split())
    )
    assert {"layer", "reason"} <= listed  # unread's keys, even where this host reads every layer
    assert sorted(shown - listed) == []
    assert sorted(listed - shown - {"layer", "reason", "gets_in", "unknown"}) == []


def test_the_fleet_json_keys_are_the_ones_it_builds() -> None:
    """The fleet answer needs Prometheus and exporters to run (tests/integration/test_fleet_diagnose.py
    reads it whole); here: every key listed is one exporter/fleet.py writes."""
    listed = ticked(section("diagnose", "###").split("`--fleet --json` keys:", 1)[1], r"[a-z_]+")
    source = (ROOT / "exporter/fleet.py").read_text()
    assert listed == {"address", "blocked", "hosts", "instance", "layers", "host", "unreachable", "error"}
    assert sorted(key for key in listed if f'"{key}"' not in source) == []
