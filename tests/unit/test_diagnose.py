"""`diagnose ADDRESS [--json]` on fixture trees: the JSON contract, exit codes, advice, host causes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from exporter.__main__ import main
from exporter.diagnose import as_json, as_text, host_causes
from exporter.sources.access.layers import LogLine, PenaltyLog
from exporter.sources.authlog.records import Event
from exporter.sources.sshd.processes import Listener, ListenerTitle
from exporter.sources.sshd.reader import ConfigState, ListenerState, SshdSnapshot

DENY = "# DenyHosts: Mon Nov 23 10:00:00 2026 | sshd: 192.0.2.11\nsshd: 192.0.2.11\nsshd: 192.0.2.10\n"
OFFLINE = [
    "--no-collector.firewall",
    "--no-collector.sshguard",
    "--no-collector.crowdsec",
    "--no-collector.authlog",
]


@pytest.fixture
def tree(tmp_path: Path) -> list[str]:
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "etc/hosts.deny").write_text(DENY)
    return [f"--path.rootfs={tmp_path}", f"--path.procfs={tmp_path / 'proc'}", *OFFLINE]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diagnose", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_contract_keys_and_exit_1_when_blocked(
    tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "192.0.2.11", "--json", *tree)
    document = json.loads(out)
    assert code == 1
    assert list(document)[:3] == ["address", "blocked", "layers"]
    assert (document["address"], document["blocked"]) == ("192.0.2.11", True)
    layers = {layer["layer"]: layer for layer in document["layers"]}
    assert set(layers) == {"tcp_wrappers", "denyhosts"}  # nothing else installed in the tree
    for layer in document["layers"]:
        assert list(layer) == ["layer", "verdict", "evidence", "detail"]
        assert layer["verdict"] in ("deny", "allow", "no_match", "unknown")
    assert layers["denyhosts"]["verdict"] == "deny"
    assert layers["tcp_wrappers"]["evidence"] == ["/etc/hosts.deny:2: sshd: 192.0.2.11"]


def test_exit_0_when_no_layer_denies(tree: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "192.0.2.99", "--json", *tree)
    assert code == 0 and json.loads(out)["blocked"] is False
    code, out, _ = _run(capsys, "192.0.2.0/24", "--json", *tree)  # a network: any address counts
    assert code == 1 and json.loads(out)["address"] == "192.0.2.0/24"


def test_text_says_what_to_do(tree: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "192.0.2.10", *tree)
    assert code == 1
    assert out.startswith("192.0.2.10: BLOCKED by tcp_wrappers\n")
    assert "to do:    remove line 3 of /etc/hosts.deny" in out
    assert "denyhosts     no_match" in out


@pytest.mark.parametrize("address", ["nope", "192.0.2.300", ""])
def test_bad_address_exits_2(tree: list[str], capsys: pytest.CaptureFixture[str], address: str) -> None:
    code, out, err = _run(capsys, address, *tree)
    assert (code, out) == (2, "") and "not an address" in err


def test_unreadable_config_exits_2(
    tree: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "192.0.2.10", f"--config.file={tmp_path / 'missing.yml'}", *tree)
    assert code == 2 and "config.file" in err
    bad = tmp_path / "bad.yml"
    bad.write_text("watchlist: [nonsense]\n")
    code, _, err = _run(capsys, "192.0.2.10", f"--config.file={bad}", *tree)
    assert code == 2 and "watchlist[0]" in err


def _snapshot(startups: int, reload_pending: bool = False) -> SshdSnapshot:
    title = ListenerTitle("/usr/sbin/sshd -D", startups, 10, 100)
    listener = Listener(900, "/etc/ssh/sshd_config", 0.0, title)
    state = ListenerState(listener, 0.0, reload_pending, (22,), True, ("tcp",), {})
    return SshdSnapshot(None, ConfigState(None, None, "", ()), (state,))


def test_host_causes() -> None:
    assert host_causes(_snapshot(2), None).causes == ()
    saturated = host_causes(_snapshot(12, reload_pending=True), None)
    assert saturated.sshd_running is True
    assert saturated.causes[0].startswith("MaxStartups saturated (/etc/ssh/sshd_config): 12")
    assert saturated.causes[1].startswith("config reload pending")
    assert "every new connection is refused" in host_causes(_snapshot(100), None).causes[0]
    stopped = host_causes(SshdSnapshot(None, ConfigState(None, None, "", ()), ()), None)
    assert (stopped.sshd_running, stopped.causes) == (False, ("sshd is not running: no listener process",))
    drop = LogLine("/var/log/auth.log", 7, "drop connection #10 ...", Event("maxstartups_drop", "192.0.2.1"))
    recent = host_causes(_snapshot(0), PenaltyLog((drop,), window=600.0))
    assert recent.causes == ("1 connection(s) dropped for MaxStartups in the last 10 minutes",)
    assert recent.evidence == ("/var/log/auth.log:7: drop connection #10 ...",)
    assert host_causes(None, None, "EACCES").sshd_running is None


def test_socket_activated_sshd_is_no_host_wide_cause() -> None:
    """No sshd process, but systemd listens on its port (ssh.socket): sshd starts on the first
    connection, so "sshd is not running" would send the reader after the wrong cause."""
    waiting = host_causes(
        SshdSnapshot(None, ConfigState(None, None, "", ()), (), socket_activated=True), None
    )
    assert (waiting.sshd_running, waiting.socket_activated, waiting.causes) == (True, True, ())
    stopped = host_causes(SshdSnapshot(None, ConfigState(None, None, "", ()), ()), None)
    assert (stopped.sshd_running, stopped.socket_activated) == (False, False)
    text = io.StringIO()
    as_text("192.0.2.10", [], waiting, text)
    assert "sshd running (socket-activated" in text.getvalue()
    assert "not running" not in text.getvalue()
    assert json.loads(as_json("192.0.2.10", [], waiting))["host"]["socket_activated"] is True
