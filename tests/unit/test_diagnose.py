"""`diagnose ADDRESS [--json]` on fixture trees: the JSON contract, exit codes, advice, host causes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from exporter.__main__ import main
from exporter.diagnose import as_json, as_text, headline, host_causes, outcome, parser
from exporter.registry import registrations
from exporter.sources.access import HostFacts, parse_target, verdicts
from exporter.sources.access.layers import Fail2banFacts, LogLine, PenaltyLog
from exporter.sources.authlog.records import Event
from exporter.sources.sshd.processes import Listener, ListenerTitle
from exporter.sources.sshd.reader import ConfigState, ListenerState, SshdSnapshot
from tests.builders import elf
from tests.procfs_tree import add_binary, add_process, make_procfs, set_children

DENY = "# DenyHosts: Mon Nov 23 10:00:00 2026 | sshd: 192.0.2.11\nsshd: 192.0.2.11\nsshd: 192.0.2.10\n"
OFFLINE = [
    "--no-collector.firewall",
    "--no-collector.sshguard",
    "--no-collector.crowdsec",
    "--no-collector.authlog",
]


LISTENER = "sshd: /usr/sbin/sshd -D [listener] {} of 10-100 startups"


def _host(root: Path, deny: str = DENY, startups: int | None = 0) -> list[str]:
    """A fixture host: hosts.deny, and an sshd listener with `startups` unauthenticated connections
    (None: no sshd process at all)."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/hosts.deny").write_text(deny)
    procfs = make_procfs(root / "proc")
    binary = add_binary(root)
    binary.write_bytes(elf(["libwrap.so.0", "libc.so.6"]))  # sshd linked with libwrap: it reads hosts.deny
    if startups is not None:
        add_process(procfs, 900, 1, LISTENER.format(startups), start_ticks=500, exe=binary)
        set_children(procfs, 900, [])
    return [f"--path.rootfs={root}", f"--path.procfs={procfs}", *OFFLINE]


@pytest.fixture
def tree(tmp_path: Path) -> list[str]:
    return _host(tmp_path)


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


def test_exit_0_when_every_layer_was_read_none_denies_and_sshd_serves(
    tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "192.0.2.99", "--json", *tree)
    document = json.loads(out)
    assert code == 0, document
    assert (document["blocked"], document["outcome"], document["unread"]) == (False, "gets_in", [])
    assert document["host"]["sshd_running"] is True and document["host"]["keeps_everyone_out"] == []
    code, out, _ = _run(capsys, "192.0.2.99", *tree)
    assert out.startswith("192.0.2.99: GETS IN: no layer blocks it and sshd serves\n")
    code, out, _ = _run(capsys, "192.0.2.0/24", "--json", *tree)  # a network: any address counts
    assert code == 1 and json.loads(out)["address"] == "192.0.2.0/24"


def test_exit_1_when_sshd_is_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No layer denies, but no sshd answers: before, "not blocked by any layer" and exit 0."""
    host = _host(tmp_path, startups=None)
    code, out, _ = _run(capsys, "192.0.2.7", *host)
    assert code == 1
    assert out.startswith("192.0.2.7: KEPT OUT: sshd is not running: no listener process\n")
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *host)
    document = json.loads(out)
    assert (code, document["blocked"], document["outcome"]) == (1, False, "kept_out")
    assert document["host"]["keeps_everyone_out"] == ["sshd is not running: no listener process"]


def test_exit_1_when_maxstartups_is_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "192.0.2.7", *_host(tmp_path, startups=100))
    assert code == 1
    assert out.startswith("192.0.2.7: KEPT OUT: MaxStartups full (")
    assert "every new connection is refused" in out.splitlines()[0]
    code, _, _ = _run(capsys, "192.0.2.7", *_host(tmp_path / "busy", startups=12))  # dropping some: not all
    assert code == 0


def test_a_full_listener_keeps_no_one_out_while_another_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second sshd (another port, a test's in its own namespace) with MaxStartups full: named, but
    the host's sshd still accepts. It was called a cause refusing every client (exit 1)."""
    host = _host(tmp_path, startups=0)
    procfs = tmp_path / "proc"
    add_process(procfs, 901, 1, LISTENER.format(100), start_ticks=600, exe=add_binary(tmp_path))
    set_children(procfs, 901, [])
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *host)
    document = json.loads(out)
    assert (code, document["outcome"], document["host"]["keeps_everyone_out"]) == (0, "gets_in", [])
    assert any("every new connection to this listener is refused" in c for c in document["host"]["causes"])


def test_exit_1_when_tcp_wrappers_deny_everyone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *_host(tmp_path, deny="ALL: ALL\n"))
    document = json.loads(out)
    assert (code, document["blocked"], document["outcome"]) == (1, True, "kept_out")
    assert document["host"]["keeps_everyone_out"] == [
        "TCP wrappers deny every client: hosts.allow and hosts.deny leave no one a way in to sshd"
    ]


def test_exit_3_when_fail2ban_is_installed_but_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fail2ban installed, its server down and no database: nothing read denies, but fail2ban was not
    seen; before, "not blocked by any layer" and exit 0."""
    host = _host(tmp_path)
    (tmp_path / "etc/fail2ban").mkdir()
    code, out, _ = _run(capsys, "192.0.2.7", *host)
    assert code == 3
    assert out.splitlines()[0] == (
        "192.0.2.7: NOT BLOCKED by what could be read; could not read: fail2ban (fail2ban-server is not "
        "running (nothing answers on /var/run/fail2ban/fail2ban.sock); no database at "
        "/var/lib/fail2ban/fail2ban.sqlite3)"
    )
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *host)
    document = json.loads(out)
    assert (code, document["blocked"], document["outcome"]) == (3, False, "unknown")
    assert [entry["layer"] for entry in document["unread"]] == ["fail2ban"]
    assert list(document["unread"][0]) == ["layer", "reason"]
    assert document["unread"][0]["reason"].startswith("fail2ban-server is not running")
    code, _, _ = _run(capsys, "192.0.2.10", *host)  # a layer that denies still decides
    assert code == 1


def test_exit_3_when_tcp_wrappers_hang_on_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _host(tmp_path, deny="sshd: 192.0.2.10\nsshd: .example.org\n")
    code, out, _ = _run(capsys, "192.0.2.7", *host)
    assert code == 3
    assert out.splitlines()[0] == (
        "192.0.2.7: NOT BLOCKED by what could be read; could not read: tcp_wrappers (depends on a name "
        "lookup: denied if the address's name matches .example.org (/etc/hosts.deny line 2))"
    )
    assert (
        "  tcp_wrappers  no_match  for 192.0.2.7 when it has no name (no lookup answers): no rule matches"
        in out
    )
    assert "but:      denied if the address's name matches .example.org (/etc/hosts.deny line 2)" in out
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *host)
    assert json.loads(out)["layers"][0]["verdict"] == "no_match"
    code, _, _ = _run(capsys, "192.0.2.10", *host)  # an address rule before it decides for sure
    assert code == 1


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


def test_fail2ban_that_cannot_start_is_named() -> None:
    """fail2ban-client -d found an enabled jail without a log file: the reason fail2ban could not be read
    names it, and so does the host's list (it keeps no client out by itself)."""
    cause = "jail sshd: no log file found (fail2ban-server refuses to start)"
    facts = HostFacts(fail2ban=Fail2banFacts(None, "fail2ban-server is not running", down_cause=cause))
    layers = verdicts(facts, parse_target("192.0.2.7"))
    host = host_causes(_snapshot(0), None, facts=facts)
    assert headline("192.0.2.7", layers, host) == (
        f"192.0.2.7: NOT BLOCKED by what could be read; could not read: fail2ban (fail2ban-server is not "
        f"running; {cause})"
    )
    assert host.causes == (f"fail2ban cannot start: {cause}",) and host.refusing == ()
    assert outcome(layers, host) == "unknown"


def test_sshd_state_unread_is_unknown_not_gets_in() -> None:
    host = host_causes(None, None, "permission denied")
    assert outcome([], host) == "unknown"
    assert json.loads(as_json("192.0.2.7", [], host))["unread"] == [
        {"layer": "sshd", "reason": "permission denied"}
    ]


def test_help_gives_the_exit_codes() -> None:
    text = " ".join(parser(registrations()).format_help().split())
    assert "Exit 0: gets in (every layer read, none denies, sshd serves)" in text
    assert "1: kept out" in text and "3: nothing read denies, but a layer could not be read" in text
    assert "2: error" in text


def test_sshd_stopped_with_a_config_it_would_refuse_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _host(tmp_path, startups=None)
    (tmp_path / "etc/ssh").mkdir()
    (tmp_path / "etc/ssh/sshd_config").write_text("Port 22\nLoginGraceTime 2x\n")
    code, out, _ = _run(capsys, "192.0.2.7", "--json", *host)
    document = json.loads(out)
    assert (code, document["outcome"]) == (1, "kept_out")
    assert document["host"]["keeps_everyone_out"] == ["sshd is not running: no listener process"]
    refused = [c for c in document["host"]["causes"] if c.startswith("sshd would refuse its config: ")]
    assert len(refused) == 1 and refused[0].startswith(
        "sshd would refuse its config: /etc/ssh/sshd_config:2: "
    ), document["host"]["causes"]
    assert "LoginGraceTime" in refused[0]
    code, out, _ = _run(capsys, "192.0.2.7", *host)  # the first line says why sshd does not start
    assert out.splitlines()[0] == (
        f"192.0.2.7: KEPT OUT: sshd is not running: no listener process; {refused[0]}"
    )
