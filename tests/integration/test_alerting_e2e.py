"""From a locked-out sshd to a notification: real sshd, exporter, Prometheus and Alertmanager.

Prometheus loads the shipped rules (deploy/prometheus/ssh-access-rules.yml) with only `for:` shortened and
1 s scrapes and evaluations; its target carries an extra label, team="infra". Alertmanager runs the
shipped routing (deploy/alertmanager/alertmanager.yml) with every receiver pointed at a webhook this
module serves on 127.0.0.1 and the group timers shortened. What a user sees is asserted: the webhook
payloads, each alert with the target's labels and its runbook_url, firing and then resolved.

Causes, in turn: hosts.deny denying everyone (SshAccessTcpWrappersDenyAll); sshd stopped and started
again (SshAccessSshdDown); MaxStartups full (SshAccessMaxStartupsFull); a watched address in hosts.deny
(SshAccessWatchedAddressBlocked); a socket-activated sshd, which must not page SshAccessSshdDown; a
brute force from a watched address that fail2ban (nftables, in a network namespace) bans
(SshAccessWatchedAddressBlocked, layer fail2ban), then the ban's nft rule deleted
(SshAccessUnenforcedBans, a warning: the tickets receiver). While that ban is in force, every panel of
both dashboards returns that host's data, queried as Grafana would; EXEMPT lists the empty ones and why.

Each test has its own sshd, exporter and Prometheus (its own `instance`, a name never reused);
Alertmanager and the webhook are shared. The exporter sees only what the test controls: a procfs
directory holding only the test's sshd (or socket unit) as its processes, and, in a private mount
namespace, the test's own hosts.allow and hosts.deny bind-mounted over /etc (the host's files are never
written). The fail2ban test's exporter runs in that test's network namespace, to see its firewall; a
relay thread in the namespace lets Prometheus, on the host's loopback, scrape it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.sources.sshd.reader import FULL_SCAN_INTERVAL
from tests.integration.dashboard_queries import GRAFANA_SUBSTITUTIONS, dashboard_queries
from tests.integration.harness import (
    SSHD,
    Exporter,
    Fail2banServer,
    NetNs,
    Rsyslog,
    Sshd,
    _stop,
    require_root_and,
    ssh_password_attempt,
    wait_until_listed,
)
from tests.integration.services import RULES, Held, Prometheus, SocketUnit, eventually
from tests.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
HOSTS_ALLOW = Path("/etc/hosts.allow")
HOSTS_DENY = Path("/etc/hosts.deny")
FOR = "2s"  # every rule's `for:`, shortened
TEAM = "infra"  # the extra target label that must reach the webhook
WATCHED = "192.0.2.10"
TIMEOUT = 45.0  # one alert's way to the webhook: a few scrapes, evaluations and group flushes


class Webhook:
    """An HTTP server on 127.0.0.1 keeping every JSON payload POSTed to it (Alertmanager's webhook)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    hook.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, name: str, instance: str) -> list[tuple[str, dict[str, Any]]]:
        """(payload receiver, alert) of every delivered alert `name` about `instance`, in order."""
        with self.lock:
            payloads = list(self.payloads)
        return [
            (payload["receiver"], alert)
            for payload in payloads
            for alert in payload["alerts"]
            if alert["labels"].get("alertname") == name and alert["labels"].get("instance") == instance
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _shorten_routes(route: dict[str, Any]) -> None:
    for key, short in (("group_wait", "0s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
        if key in route:
            route[key] = short
    for child in route.get("routes", []):
        _shorten_routes(child)


class Alertmanager:
    """prometheus-alertmanager on 127.0.0.1 with the shipped routing, receivers sent to `webhook`."""

    def __init__(self, directory: Path, webhook: Webhook) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        config["templates"] = [str(ALERTMANAGER_CONFIG.parent / name) for name in config["templates"]]
        _shorten_routes(config["route"])
        self.receivers = [receiver["name"] for receiver in config["receivers"]]
        config["receivers"] = [
            {"name": name, "webhook_configs": [{"url": f"{webhook.url}/{name}", "send_resolved": True}]}
            for name in self.receivers
        ]
        self.config = directory / "alertmanager.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log = (directory / "alertmanager.log").open("w")
        self.proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={self.config}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30)
        eventually(self.ready, what="alertmanager /-/ready")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


class AlertingPrometheus(Prometheus):
    """The example config, fast and local: shipped rules with `for:` shortened, one target labelled
    team="infra", alerts sent to `alertmanager`."""

    def __init__(self, directory: Path, target_port: int, instance: str, alertmanager_port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                for key in ("for", "keep_firing_for"):
                    if key in rule:
                        rule[key] = FOR if key == "for" else "0s"
        (directory / "rules.yml").write_text(yaml.safe_dump(rules))
        super().__init__(
            directory,
            target_port,
            rules=directory / "rules.yml",
            labels={"team": TEAM, "instance": instance},
            alertmanager_port=alertmanager_port,
        )


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Webhook, Alertmanager]]:
    require_root_and(
        SSHD, "ssh-keygen", "prometheus", ALERTMANAGER, "unshare", "ip", "systemd-socket-activate"
    )
    webhook = Webhook()
    try:
        alertmanager = Alertmanager(tmp_path_factory.mktemp("alertmanager"), webhook)
        try:
            yield webhook, alertmanager
        finally:
            alertmanager.stop()
    finally:
        webhook.close()


class Host:
    """One monitored host: the exporter seeing `procfs` (only the test's processes) and, in a private
    mount namespace, the test's hosts.allow and hosts.deny; Prometheus scraping it."""

    def __init__(self, directory: Path, sshd_config: Path, alertmanager: Alertmanager) -> None:
        self.dir = directory
        self.procfs = directory / "proc"
        self.procfs.mkdir(parents=True)
        (self.procfs / "stat").symlink_to("/proc/stat")
        etc = directory / "etc"
        etc.mkdir()
        self.hosts_deny = etc / "hosts.deny"
        self.hosts_deny.write_text("")
        (etc / "hosts.allow").write_text("")
        binds = [(HOSTS_DENY, self.hosts_deny)]
        if HOSTS_ALLOW.exists():  # a bind mount needs its target; a missing hosts.allow is empty anyway
            binds.append((HOSTS_ALLOW, etc / "hosts.allow"))
        config = directory / "exporter.yml"
        config.write_text(yaml.safe_dump({"watchlist": [WATCHED]}))
        mounts = " && ".join(f"mount --bind {source} {target}" for target, source in binds)
        enter = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]
        self.exporter = Exporter(
            f"--path.procfs={self.procfs}",
            f"--collector.sshd.config={sshd_config}",
            f"--config.file={config}",
            "--no-collector.authlog",
            "--no-collector.firewall",
            "--no-collector.crowdsec",
            "--no-collector.sshguard",
            "--no-collector.fail2ban",
            "--no-collector.denyhosts",
            enter=enter,
        )
        # A name of its own (as users give hosts), never reused: the exporter's port may be an earlier
        # test's, whose alerts Alertmanager still holds.
        self.instance = f"host-{uuid.uuid4().hex[:12]}.example:9822"
        try:
            self.prometheus = AlertingPrometheus(
                directory / "prometheus", self.exporter.port, self.instance, alertmanager.port
            )
        except BaseException:
            _stop(self.exporter.proc)
            raise

    def show(self, pid: int, name: str | None = None) -> None:
        """Put process `pid` into the exporter's procfs (as `name`, its pid by default)."""
        (self.procfs / (name or str(pid))).symlink_to(f"/proc/{pid}")

    def hide(self, name: int | str) -> None:
        (self.procfs / str(name)).unlink(missing_ok=True)

    def value(self, expr: str) -> float | None:
        result = self.prometheus.query(f'{expr}{{instance="{self.instance}"}}')
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_for_value(self, metric: str, expected: float) -> None:
        eventually(lambda: self.value(metric) == expected, timeout=TIMEOUT, what=f"{metric} == {expected}")

    def close(self) -> None:
        self.prometheus.stop()
        _stop(self.exporter.proc)


@pytest.fixture
def sshd(tmp_path: Path, alerting: tuple[Webhook, Alertmanager]) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd", "MaxStartups 3\n") as daemon:
        yield daemon


@pytest.fixture
def host(tmp_path: Path, sshd: Sshd, alerting: tuple[Webhook, Alertmanager]) -> Iterator[Host]:
    monitored = Host(tmp_path / "host", sshd.config, alerting[1])
    monitored.show(sshd.pid)
    try:
        yield monitored
    finally:
        monitored.close()


def _delivered(
    webhook: Webhook,
    host: Host,
    name: str,
    status: str,
    receiver: str,
    labels: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    severity: str = "critical",
) -> dict[str, Any]:
    """Wait for alert `name` about `host` with `status` at the webhook; check what a user reads in it."""

    wanted = labels or {}

    def arrived() -> dict[str, Any] | None:
        for got_receiver, alert in webhook.alerts(name, host.instance):
            if alert["status"] == status and all(alert["labels"].get(k) == v for k, v in wanted.items()):
                assert got_receiver == receiver, (name, got_receiver)
                return alert
        return None

    alert: dict[str, Any] = eventually(arrived, timeout=timeout, what=f"{name} {status} at the webhook")
    assert alert["labels"]["team"] == TEAM, alert  # the target's own label survives the rule
    assert alert["labels"]["job"] == "ssh-access-exporter", alert
    assert alert["labels"]["severity"] == severity, alert
    anchor = name.lower()
    assert alert["annotations"]["runbook_url"].endswith(f"/docs/runbook.md#{anchor}"), alert
    assert alert["annotations"]["summary"] and alert["annotations"]["description"], alert
    return alert


def _fire_and_resolve(
    webhook: Webhook,
    host: Host,
    name: str,
    cause: Callable[[], object],
    remedy: Callable[[], object],
    **labels: str,
) -> None:
    assert not webhook.alerts(name, host.instance), "alerted before the cause"
    cause()
    _delivered(webhook, host, name, "firing", "ssh-access-pager", labels)
    remedy()
    _delivered(webhook, host, name, "resolved", "ssh-access-pager", labels)


def _timestamp(rfc3339: str) -> float:
    """Go's RFC 3339 with nanoseconds (Prometheus' lastEvaluation) as a Unix time."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


def test_hosts_deny_denying_everyone_pages(alerting: tuple[Webhook, Alertmanager], host: Host) -> None:
    webhook, _ = alerting
    host.wait_for_value("ssh_access_tcpwrappers_sshd_honoured", 1)
    host.wait_for_value("ssh_access_tcpwrappers_sshd_denies_everyone", 0)
    _fire_and_resolve(
        webhook,
        host,
        "SshAccessTcpWrappersDenyAll",
        lambda: host.hosts_deny.write_text("sshd: ALL\n"),  # in place: the bind mount keeps the inode
        lambda: host.hosts_deny.write_text(""),
    )


def test_sshd_stopped_pages_and_resolves_when_back(
    alerting: tuple[Webhook, Alertmanager], host: Host, sshd: Sshd
) -> None:
    webhook, _ = alerting
    host.wait_for_value("ssh_access_sshd_listeners", 1)

    def stop() -> None:
        sshd.stop()
        host.hide(sshd.pid)

    def start() -> None:
        sshd.start()
        host.show(sshd.pid)

    _fire_and_resolve(webhook, host, "SshAccessSshdDown", stop, start)


def test_maxstartups_full_pages(alerting: tuple[Webhook, Alertmanager], host: Host, sshd: Sshd) -> None:
    webhook, _ = alerting
    host.wait_for_value("ssh_access_sshd_listeners", 1)
    held = Held(sshd.port)
    try:
        _fire_and_resolve(
            webhook,
            host,
            "SshAccessMaxStartupsFull",
            lambda: held.hold(3),
            held.close,
            listener=str(sshd.config),
        )
    finally:
        held.close()


def test_watched_address_in_hosts_deny_pages(alerting: tuple[Webhook, Alertmanager], host: Host) -> None:
    webhook, _ = alerting
    host.wait_for_value("ssh_access_tcpwrappers_sshd_honoured", 1)
    _fire_and_resolve(
        webhook,
        host,
        "SshAccessWatchedAddressBlocked",
        lambda: host.hosts_deny.write_text(f"sshd: {WATCHED}\n"),
        lambda: host.hosts_deny.write_text(""),
        address=WATCHED,
        layer="tcp_wrappers",
    )


def test_socket_activated_sshd_does_not_page(alerting: tuple[Webhook, Alertmanager], tmp_path: Path) -> None:
    """systemd-socket-activate as pid 1 (see test_sshd_socket_activation_live) holds sshd's port: no
    sshd process listens, and SshAccessSshdDown stays silent however long Prometheus evaluates; once
    the socket unit is gone too, the same rule pages (the control that it would have)."""
    webhook, alertmanager = alerting
    with NetNs(tmp_path / "ns") as netns:
        sshd = Sshd(tmp_path / "sshd", netns=netns)  # its config, host key and port; never run as -D
        unit = SocketUnit(netns, sshd)
        try:
            assert unit.banner().startswith("SSH-2.0-OpenSSH"), "sshd must answer through the socket"
            host = Host(tmp_path / "host", sshd.config, alertmanager)
            try:
                host.show(unit.proc.pid, "1")
                host.wait_for_value("ssh_access_sshd_socket_activated", 1)
                assert host.value("ssh_access_sshd_listeners") == 0
                # The sshd group evaluated long enough for a `for: 2s` rule to fire and be delivered.
                since = time.time()

                def evaluated_since() -> bool:
                    groups = host.prometheus.api("rules", type="alert")["groups"]
                    (group,) = [group for group in groups if group["name"] == "ssh-access-sshd"]
                    return _timestamp(group["lastEvaluation"]) > since + 6

                eventually(evaluated_since, timeout=TIMEOUT, what="6 s of rule evaluations")
                down = [
                    alert
                    for alert in host.prometheus.api("alerts")["alerts"]
                    if alert["labels"]["alertname"] == "SshAccessSshdDown"
                    and alert["labels"].get("instance") == host.instance
                ]
                assert not down, down
                assert not webhook.alerts("SshAccessSshdDown", host.instance)
                unit.stop()
                host.hide("1")
                # the exporter reads pid 1's sockets again within FULL_SCAN_INTERVAL
                wait = TIMEOUT + FULL_SCAN_INTERVAL
                _delivered(webhook, host, "SshAccessSshdDown", "firing", "ssh-access-pager", timeout=wait)
            finally:
                host.close()
        finally:
            unit.stop()


@contextlib.contextmanager
def _connected(netns: NetNs, port: int) -> Iterator[socket.socket]:
    """A TCP connection to 127.0.0.1:`port` inside `netns`, open (sshd's banner read) until the end."""
    made: list[socket.socket] = []

    def connect() -> None:
        netns.enter_this_thread()  # this short-lived thread only
        made.append(socket.create_connection(("127.0.0.1", port), timeout=10))

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join(timeout=15)
    (sock,) = made
    try:
        assert sock.recv(256).startswith(b"SSH-2.0-"), "sshd must accept the connection"
        yield sock
    finally:
        sock.close()


class Forwarder:
    """127.0.0.1:port on the host relayed to 127.0.0.1:`target` inside `netns` (Prometheus, in the host's
    namespace, scrapes an exporter that must run in the namespace to see its firewall)."""

    def __init__(self, netns: NetNs, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        self.netns = netns
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.netns.enter_this_thread()  # this thread's outgoing sockets are in the namespace
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone would not)
        self.listener.close()
        self.thread.join(timeout=10)


class BannedHost(Host):
    """The exporter in a network namespace with sshd, rsyslog and fail2ban (nftables-multiport): it
    reads their firewall; the watchlist holds the brute forcer, 127.0.0.2."""

    def __init__(
        self,
        directory: Path,
        netns: NetNs,
        sshd: Sshd,
        syslog: Rsyslog,
        fail2ban: Fail2banServer,
        am: Alertmanager,
    ) -> None:
        self.dir = directory
        directory.mkdir(parents=True)
        config = directory / "exporter.yml"
        config.write_text(yaml.safe_dump({"watchlist": [WATCHED, BRUTE_FORCER]}))
        (directory / "authlog").mkdir()
        self.exporter = Exporter(
            f"--collector.sshd.config={sshd.config}",
            f"--config.file={config}",
            f"--collector.fail2ban.socket={fail2ban.socket}",
            f"--collector.fail2ban.db={fail2ban.db}",
            f"--collector.fail2ban.config-dir={fail2ban.conf}",
            f"--collector.authlog.files={syslog.log}",
            f"--collector.authlog.state-dir={directory / 'authlog'}",
            "--no-collector.crowdsec",
            "--no-collector.sshguard",
            "--no-collector.denyhosts",
            netns=netns,
        )
        self.forwarder = Forwarder(netns, self.exporter.port)
        self.instance = f"host-{uuid.uuid4().hex[:12]}.example:9822"
        try:
            self.prometheus = AlertingPrometheus(
                directory / "prometheus", self.forwarder.port, self.instance, am.port
            )
        except BaseException:
            self.forwarder.close()
            _stop(self.exporter.proc)
            raise

    def close(self) -> None:
        super().close()
        self.forwarder.close()


BRUTE_FORCER = "127.0.0.2"  # loopback inside the test's namespace


def test_brute_force_banned_then_its_rule_deleted(
    alerting: tuple[Webhook, Alertmanager], tmp_path: Path
) -> None:
    """A brute force from a watched address, banned by fail2ban for real: SshAccessWatchedAddressBlocked
    (layer fail2ban) pages; meanwhile every dashboard panel but the EXEMPT ones returns data (the auth
    log collector reads rsyslog's file); the ban's nft rule deleted by hand: SshAccessUnenforcedBans opens
    a ticket; unbanned: both resolve."""
    require_root_and("fail2ban-server", "fail2ban-client", "rsyslogd", "sshpass", "nft")
    webhook, alertmanager = alerting
    jail = (
        "[sshd]\nenabled = true\nfilter = sshd\nport = {port}\nlogpath = {log}\n"
        "banaction = nftables-multiport\nbanaction_allports = nftables-multiport\n"
    )
    with (
        NetNs(tmp_path / "ns") as netns,
        Rsyslog(tmp_path / "syslog") as syslog,
        Sshd(tmp_path / "sshd", netns=netns, devlog=syslog.socket) as sshd,
        Fail2banServer(tmp_path / "fail2ban", netns, jail.format(port=sshd.port, log=syslog.log)) as fail2ban,
    ):
        host = BannedHost(tmp_path / "host", netns, sshd, syslog, fail2ban, alertmanager)
        try:
            _ban_and_unenforce(webhook, host, netns, sshd, fail2ban)
        finally:
            host.close()


def _ban_and_unenforce(
    webhook: Webhook, host: Host, netns: NetNs, sshd: Sshd, fail2ban: Fail2banServer
) -> None:
    host.wait_for_value("ssh_access_fail2ban_sshd_guarded", 1)
    assert not webhook.alerts("SshAccessWatchedAddressBlocked", host.instance)
    # maxretry 2: this one attempt bans (see ssh_password_attempt's doc)
    assert "Permission denied" in ssh_password_attempt(netns, sshd.port, source=BRUTE_FORCER)
    blocked = {"address": BRUTE_FORCER, "layer": "fail2ban"}
    pager, tickets = "ssh-access-pager", "ssh-access-tickets"
    _delivered(webhook, host, "SshAccessWatchedAddressBlocked", "firing", pager, blocked)
    # the ban is real: nft in the namespace rejects the brute forcer (once the action has run)
    wait_until_listed(netns, ["nft", "list", "ruleset"], BRUTE_FORCER)
    assert "Connection refused" in ssh_password_attempt(netns, sshd.port, source=BRUTE_FORCER)
    with _connected(netns, sshd.port):  # an ESTABLISHED connection, for the TCP states panel
        _every_panel_has_data(host)

    assert not webhook.alerts("SshAccessUnenforcedBans", host.instance)
    chain = ["inet", "f2b-table", "f2b-chain"]
    document = json.loads(netns.run(["nft", "-j", "list", "chain", *chain]).stdout)
    handles = [
        item["rule"]["handle"]
        for item in document["nftables"]
        if "rule" in item and "addr-set-sshd" in json.dumps(item["rule"])
    ]
    assert handles, document
    for handle in handles:  # the classic: the ban stays, its rule is gone
        deleted = netns.run(["nft", "delete", "rule", *chain, "handle", str(handle)])
        assert deleted.returncode == 0, deleted.stderr
    _delivered(webhook, host, "SshAccessUnenforcedBans", "firing", tickets, severity="warning")

    fail2ban.client("set", "sshd", "unbanip", BRUTE_FORCER)
    _delivered(webhook, host, "SshAccessUnenforcedBans", "resolved", tickets, severity="warning")
    _delivered(webhook, host, "SshAccessWatchedAddressBlocked", "resolved", pager, blocked)


# Panels of either dashboard that stay empty while the ban is in force, and why.
EXEMPT = {
    "CrowdSec decisions": "CrowdSec does not run in this test",
    "DenyHosts": "DenyHosts does not run in this test",
    "sshguard": "sshguard does not run in this test",
}
RANGE = 300.0  # the dashboards' time range: the last 5 minutes, as a user opens them during an incident


def _panel_results(host: Host) -> dict[tuple[str, str], bool]:
    """(dashboard uid, panel title) -> whether any of its queries returns data, each query evaluated as
    Grafana would with $job and $instance set to this host: an instant query at now, or a range query
    over the last RANGE seconds (annotations too)."""
    variables = {
        **GRAFANA_SUBSTITUTIONS,
        'job=~"$job"': 'job=~"ssh-access-exporter"',
        'instance=~"$instance"': f'instance=~"{host.instance}"',
        "$__range": f"{int(RANGE)}s",
    }
    results: dict[tuple[str, str], bool] = {}
    end = time.time()
    for uid, _, title, expr, instant in dashboard_queries():
        grafana = expr
        for variable, replacement in variables.items():
            grafana = grafana.replace(variable, replacement)
        assert "$" not in grafana, f"unsubstituted variable in {title}: {expr}"
        if instant:
            data = host.prometheus.api("query", query=grafana, time=f"{end:.3f}")
        else:
            span = {"start": f"{end - RANGE:.3f}", "end": f"{end:.3f}", "step": "2"}
            data = host.prometheus.api("query_range", query=grafana, **span)
        results[uid, title] = results.get((uid, title), False) or bool(data["result"])
    return results


def _every_panel_has_data(host: Host) -> None:
    """Every panel of both dashboards shows this host's data, but the EXEMPT ones (which must be empty:
    an exemption that is not needed any more is stale). Polled: rates need a few scrapes, and log events
    reach the exporter on its next read."""

    def wanted() -> dict[tuple[str, str], bool] | None:
        results = _panel_results(host)
        return results if all(got or title in EXEMPT for (_, title), got in results.items()) else None

    try:
        results = eventually(wanted, timeout=TIMEOUT, what="every panel to return data")
    except AssertionError:
        empty = sorted(key for key, got in _panel_results(host).items() if not got and key[1] not in EXEMPT)
        raise AssertionError(f"panels without data: {empty}") from None
    assert set(EXEMPT) <= {title for _, title in results}, "an exemption names no panel"
    stale = sorted(key for key, got in results.items() if got and key[1] in EXEMPT)
    assert not stale, f"exempt panels that return data: {stale}"
