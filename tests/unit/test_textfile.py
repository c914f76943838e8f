"""`textfile --output FILE`: one collection written atomically, auth log counters kept across runs."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.metrics_core import CounterMetricFamily

import exporter.textfile
from exporter.__main__ import main
from exporter.registry import registrations
from exporter.sources.host.files import write_file
from exporter.textfile import LOCK, STATE_DIR, TOTALS, TextfileError, Totals
from tests.e2e import fixture
from tests.exposition import Samples, samples, value

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "deploy/systemd/ssh-access-exporter-textfile.service"
TIMER = ROOT / "deploy/systemd/ssh-access-exporter-textfile.timer"
MAIN_UNIT = ROOT / "deploy/systemd/ssh-access-exporter.service"
AUTH_LOG = "/var/log/auth.log"
FAILED = "Dec  6 05:00:{:02d} host sshd[{}]: Failed password for root from 192.0.2.7 port 4000 ssh2\n"
ONLY_AUTHLOG = [f"--no-collector.{r.name}" for r in registrations() if r.name != "authlog"]


class Host:
    """A rootfs with an auth log, and the flags of a textfile run on it."""

    def __init__(self, root: Path) -> None:
        self.rootfs = root / "rootfs"
        self.log = self.rootfs / AUTH_LOG.lstrip("/")
        self.log.parent.mkdir(parents=True)
        self.log.write_text("")
        self.state = root / "state"
        self.output = root / "textfile" / "ssh_access.prom"
        self.output.parent.mkdir()
        self.lines = 0

    def append(self, count: int, path: Path | None = None) -> None:
        with (path or self.log).open("a") as log:
            for _ in range(count):
                self.lines += 1
                log.write(FAILED.format(self.lines % 60, 1000 + self.lines))

    def flags(self, *extra: str) -> list[str]:
        return [
            f"--output={self.output}",
            f"--path.rootfs={self.rootfs}",
            f"--path.procfs={self.rootfs}",
            f"--collector.authlog.state-dir={self.state}",
            f"--collector.authlog.files={AUTH_LOG}",
            "--collector.authlog.journal=off",
            "--log.level=error",
            *ONLY_AUTHLOG,
            *extra,
        ]

    def run(self, *extra: str) -> Samples:
        assert main(["textfile", *self.flags(*extra)]) == 0
        return samples(self.output.read_text())


def _failed(found: Samples) -> float | None:
    return value(found, "ssh_access_sshd_events_total", event="auth_failed")


def _read(found: Samples) -> float | None:
    return value(found, "ssh_access_authlog_lines_read_total", source=AUTH_LOG)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_counters_grow_by_exactly_the_new_lines_and_never_go_back(host: Host) -> None:
    host.append(5)  # before the first run: the first run starts at the end, as the server does
    first = host.run()
    assert _failed(first) == 0 and _read(first) == 0
    host.append(3)
    second = host.run()
    assert _failed(second) == 3 and _read(second) == 3
    third = host.run()  # nothing new
    assert _failed(third) == 3 and _read(third) == 3
    host.append(2)
    assert _failed(host.run()) == 5


def test_from_start_counts_what_the_file_holds_once(host: Host) -> None:
    host.append(4)
    assert _failed(host.run("--collector.authlog.from-start")) == 4
    assert _failed(host.run("--collector.authlog.from-start")) == 4  # resumes: from-start is the first run's


def test_a_rotated_log_between_runs_loses_and_repeats_nothing(host: Host) -> None:
    host.run()
    host.append(2)
    assert _failed(host.run()) == 2
    host.append(1)  # written before the rotation, not read yet
    rotated = host.log.with_name("auth.log.1")
    host.log.rename(rotated)
    host.append(1, rotated)  # a late line to the renamed file
    host.log.write_text("")
    host.append(3)  # the new file
    assert _failed(host.run()) == 2 + 1 + 1 + 3


def test_the_file_holds_the_scrape_and_its_self_metrics_only(tmp_path: Path) -> None:
    rootfs, procfs = fixture.build(tmp_path / "host")
    output = tmp_path / "textfile" / "ssh_access.prom"
    output.parent.mkdir()
    code = main(
        [
            "textfile",
            f"--output={output}",
            f"--path.rootfs={rootfs}",
            f"--path.procfs={procfs}",
            f"--config.file={fixture.CONFIG}",
            f"--collector.authlog.state-dir={tmp_path / 'state'}",
            f"--collector.authlog.files={AUTH_LOG}",
            "--collector.authlog.journal=off",
            "--collector.fail2ban.socket=",
            "--no-collector.firewall",
            "--no-collector.crowdsec",
            "--log.level=error",
        ]
    )
    assert code == 0
    assert output.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in output.parent.iterdir()] == ["ssh_access.prom"]  # no temporary file left
    text = output.read_text()
    found = samples(text)
    assert not [line for line in text.splitlines() if line.startswith(("process_", "python_"))]
    for name in ("authlog", "fail2ban", "sshd", "tcpwrappers", "watchlist"):
        assert value(found, "ssh_access_collector_success", collector=name) == 1.0, name
        assert value(found, "ssh_access_collector_duration_seconds", collector=name) is not None
    assert any(name == "ssh_access_build_info" for name, _ in found)
    assert value(found, "ssh_access_sshd_listeners") == 1.0
    assert value(found, "ssh_access_banned_addresses", source="fail2ban", jail="sshd") == 2.0


def test_a_failed_write_keeps_the_old_file_and_exits_1(
    host: Host, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host.run()
    before = host.output.read_bytes()
    original = write_file

    def full(path: Path, data: bytes, mode: int) -> None:
        if path == host.output:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(path, data, mode)

    monkeypatch.setattr(exporter.textfile, "write_file", full)
    host.append(2)
    assert main(["textfile", *host.flags()]) == 1
    assert f"cannot write {host.output}: No space left on device" in capsys.readouterr().err
    assert host.output.read_bytes() == before
    monkeypatch.undo()
    assert _failed(host.run()) == 2  # the lines of the failed run were kept in the totals


def test_write_file_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.prom"
    write_file(target, b"old\n", 0o644)
    assert target.read_bytes() == b"old\n" and target.stat().st_mode & 0o777 == 0o644

    def broken(_fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        write_file(target, b"new\n", 0o644)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.prom"]


def test_unreadable_totals_stop_the_run(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    host.run()
    (host.state / TOTALS).write_text("{not json")
    before = host.output.read_bytes()
    assert main(["textfile", *host.flags()]) == 1
    assert f"cannot read the totals {host.state / TOTALS}" in capsys.readouterr().err
    assert host.output.read_bytes() == before


def test_totals_round_trip(tmp_path: Path) -> None:
    family = CounterMetricFamily("ssh_access_sshd_events", "doc", labels=["event"])
    family.add_metric(["auth_failed"], 2.0)
    totals = Totals(tmp_path / TOTALS)
    totals.add([family])
    totals.add([family])
    totals.save()
    loaded = Totals.load(tmp_path / TOTALS)
    assert loaded.values == {("ssh_access_sshd_events_total", (("event", "auth_failed"),)): 4.0}
    with pytest.raises(TextfileError):
        (tmp_path / TOTALS).write_text('{"version": 99, "counters": []}')
        Totals.load(tmp_path / TOTALS)


def test_one_run_at_a_time(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    host.state.mkdir()
    with open(host.state / LOCK, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        assert main(["textfile", *host.flags()]) == 1
    assert "another textfile run holds" in capsys.readouterr().err


def test_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["textfile"])
    assert exit_.value.code == 2
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["textfile", f"--output={tmp_path / 'none' / 'x.prom'}"])
    assert exit_.value.code == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["textfile", "--help"])
    assert f"(default {STATE_DIR})" in capsys.readouterr().out


# --- the systemd example ------------------------------------------------------------------------------


def _settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, found = line.partition("=")
            settings.setdefault(key.strip(), []).append(found.strip())
    return settings


def test_service_and_timer() -> None:
    service, main_unit, timer = _settings(SERVICE), _settings(MAIN_UNIT), _settings(TIMER)
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [
        "/usr/bin/ssh-access-exporter textfile --output=/var/lib/prometheus/node-exporter/ssh_access.prom "
        "--log.level=warn $ARGS"
    ]
    assert service["ReadWritePaths"] == ["/var/lib/ssh-access-exporter", "-/var/lib/prometheus/node-exporter"]
    # The main unit's sandbox, setting for setting; what a oneshot that listens nowhere differs in aside.
    differ = {"Description", "After", "Wants", "WantedBy", "Type", "ExecStart", "EnvironmentFile", "Restart",
              "RestartSec", "TimeoutStopSec", "ReadWritePaths"}  # fmt: skip
    for key in main_unit.keys() - differ:
        assert service.get(key) == main_unit[key], key
    assert timer["OnCalendar"] == ["minutely"]
    assert timer["WantedBy"] == ["timers.target"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    command = Path(sys.executable).with_name("ssh-access-exporter")
    service = tmp_path / SERVICE.name
    service.write_text(SERVICE.read_text().replace("/usr/bin/ssh-access-exporter", str(command)))
    shutil.copy(TIMER, tmp_path / TIMER.name)
    run = subprocess.run(
        [analyze, "verify", str(service), str(tmp_path / TIMER.name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
