"""The container image (deploy/container/Containerfile), built with podman and run as the README says.

No registry is reachable here, so the Debian base is made from the package mirror with mmdebstrap
(deploy/container/build-base.sh) and kept, one a day and per version of that script
(`localhost/debian:bookworm-YYYYMMDD-HASH`); the image is kept as `localhost/ssh-access-exporter:test`
(its build stage as `...:test-build`), so podman's layer cache makes the next build warm: about a
minute and a half cold (plus half a minute for the base), seconds warm, a minute when the package's
files changed (the mypyc compile). Nothing else is left: the containers are removed by name, a
replaced build by its image ID.

The container runs read-only with the host's / mounted read-only at /host, in the host's PID and
network namespaces, listening on 127.0.0.1 only, and reads the real sshd harness.py starts on loopback.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.exposition import Samples, promtool_check, samples, value
from tests.integration.harness import SSHD, Sshd, require_root_and
from tests.integration.services import ROOT, Held, eventually
from tests.net import free_port

IMAGE = "localhost/ssh-access-exporter:test"
BUILD_STAGE = "localhost/ssh-access-exporter:test-build"
STAGES = 2  # FROM lines in the Containerfile
BASE_REPO = "localhost/debian"
CONTAINERFILE = ROOT / "deploy/container/Containerfile"
BUILD_BASE = ROOT / "deploy/container/build-base.sh"
STATE_DIR = "/var/lib/ssh-access-exporter"
# The README's run command: uid 0 with only the capabilities the systemd unit keeps.
CAPABILITIES = ("DAC_READ_SEARCH", "SYS_PTRACE", "NET_ADMIN", "NET_RAW")
HOST_FLAGS = ("--path.rootfs=/host", "--path.procfs=/host/proc", f"--collector.authlog.state-dir={STATE_DIR}")
# What reads the host through /host and works in the container as root with those capabilities. Not
# here: fail2ban, sshguard, crowdsec (whether they succeed depends on which ban tools this host runs).
WORKING_COLLECTORS = ("sshd", "authlog", "denyhosts", "firewall", "tcpwrappers", "watchlist")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _podman() -> list[str]:
    """podman with runc when it is installed: crun refuses hosts with cgroups in hybrid mode (v1 with a
    v2 hierarchy beside it), runc runs everywhere."""
    return ["podman", "--runtime=runc"] if shutil.which("runc") else ["podman"]


def _ulimits() -> list[str]:
    """The limits the container gets: podman's defaults (nofile 1048576) are above what a host without
    CAP_SYS_RESOURCE may set, so the runtime would refuse to start; these are the test's own."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = 4096
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def _podman_run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_podman(), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _image_id(name: str) -> str | None:
    found = _podman_run("image", "inspect", "--format", "{{.Id}}", name)
    return found.stdout.strip() if found.returncode == 0 else None


def _base_image() -> str:
    """Today's base, made once a day (and again when build-base.sh changes); earlier ones are removed
    when a new one is made."""
    script = hashlib.sha256(BUILD_BASE.read_bytes()).hexdigest()[:8]
    tag = f"{BASE_REPO}:bookworm-{datetime.datetime.now(datetime.UTC):%Y%m%d}-{script}"
    if _image_id(tag) is None:
        made = subprocess.run(
            [str(BUILD_BASE), tag], capture_output=True, text=True, timeout=900, check=False
        )
        assert made.returncode == 0, made.stderr[-4000:]
        listed = _podman_run("images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPO).stdout.split()
        for old in listed:
            if old != tag and old.startswith(f"{BASE_REPO}:bookworm-"):
                _podman_run("rmi", old)
    return tag


def _build_stage_id(output: str) -> str:
    """The image podman made of the build stage: the last `--> ID` line before the final stage starts."""
    stage = output[: output.index(f"[{STAGES}/{STAGES}] STEP 1/")]
    found = re.findall(r"^--> ([0-9a-f]{11,})$", stage, re.MULTILINE)
    assert found, stage[-2000:]
    return str(found[-1])


def _build(base: str) -> float:
    """Builds IMAGE on `base`; returns the seconds it took.

    The build stage is tagged too (BUILD_STAGE): untagged, it would be left dangling by every build, and
    it is what keeps the compile step cached. What a build replaces is removed by its image ID."""
    command = [
        *_podman(), "build", *_ulimits(), "-f", str(CONTAINERFILE), "-t", IMAGE,
        "--build-arg", f"BASE={base}", "--build-arg", f"VERSION={metadata.version('ssh-access-exporter')}",
    ]  # fmt: skip
    if CA_BUNDLE.exists():  # a TLS-inspecting proxy's CA, as this host trusts it, for pip in the build
        command += ["--secret", f"id=pip-ca,src={CA_BUNDLE}"]
    before = {tag: _image_id(tag) for tag in (IMAGE, BUILD_STAGE)}
    started = time.monotonic()
    built = subprocess.run([*command, str(ROOT)], capture_output=True, text=True, timeout=1800, check=False)
    took = time.monotonic() - started
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    tagged = _podman_run("tag", _build_stage_id(built.stdout), BUILD_STAGE)
    assert tagged.returncode == 0, tagged.stderr
    for tag, old in before.items():
        if old is not None and old != _image_id(tag):
            _podman_run("rmi", old)
    return took


@pytest.fixture(scope="module")
def image() -> str:
    require_root_and("podman", "mmdebstrap", SSHD, "ssh-keygen", "promtool")
    took = _build(_base_image())
    print(f"container image built in {took:.1f}s")  # cold or warm: the layer cache decides
    return IMAGE


class Container:
    """`podman run -d` under a unique name; removed (with its anonymous volumes) by that name on exit."""

    def __init__(self, image: str, *args: str, options: tuple[str, ...] = ()) -> None:
        self.name = f"sae-test-{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        run = _podman_run(
            "run", "-d", "--name", self.name, *_ulimits(), "--read-only", "--pid=host", "--network=host",
            "-v", "/:/host:ro,rslave", "--security-opt=no-new-privileges", *options,
            image, *HOST_FLAGS, f"--web.listen-address=127.0.0.1:{self.port}", *args,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=15) as response:
            return str(response.read().decode())

    def scrape(self) -> Samples:
        return samples(self.text())

    def wait_until_up(self) -> Samples:
        def up() -> Samples | None:
            with contextlib.suppress(OSError):
                return self.scrape()
            assert self.running(), self.logs()
            return None

        found: Samples = eventually(up, timeout=30, what=f"{self.url} of {self.name}")
        return found

    def running(self) -> bool:
        state = _podman_run("inspect", "--format", "{{.State.Running}}", self.name)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        return _podman_run("logs", self.name).stderr

    def close(self) -> None:
        _podman_run("rm", "-f", "-v", "-t", "5", self.name)


@contextlib.contextmanager
def container(image: str, *args: str, options: tuple[str, ...] = ()) -> Iterator[Container]:
    started = Container(image, *args, options=options)
    try:
        yield started
    finally:
        started.close()


def _root_options(state: Path) -> tuple[str, ...]:
    caps = ",".join(CAPABILITIES)
    return ("--cap-drop=ALL", f"--cap-add={caps}", "-v", f"{state}:{STATE_DIR}")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd", "MaxStartups 3:50:6\n") as server:
        yield server


def test_image_prints_its_version(image: str) -> None:
    run = _podman_run("run", "--rm", *_ulimits(), "--read-only", "--network=none", image, "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"ssh-access-exporter {metadata.version('ssh-access-exporter')}"


def test_image_labels_and_port(image: str) -> None:
    inspect = json.loads(_podman_run("image", "inspect", image).stdout)[0]
    labels = inspect["Labels"]
    assert labels["org.opencontainers.image.title"] == "ssh-access-exporter"
    assert labels["org.opencontainers.image.version"] == metadata.version("ssh-access-exporter")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    config = inspect["Config"]
    assert "9822/tcp" in config["ExposedPorts"]
    assert STATE_DIR in config["Volumes"]


def _scrape_when(running: Container, name: str, expected: float, **labels: str) -> Samples | None:
    """The scrape, once `name{labels}` has the expected value (for `eventually`)."""
    found = running.scrape()
    return found if value(found, name, **labels) == expected else None


def test_image_scrapes_the_host_read_only(image: str, sshd: Sshd, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    auth_log = tmp_path / "auth.log"  # host paths: the container reads them as /host/...
    auth_log.write_text("")
    listener = str(sshd.config)
    args = (f"--collector.sshd.config={listener}", f"--collector.authlog.files={auth_log}")
    held = Held(sshd.port)
    with container(image, *args, options=_root_options(state)) as running:
        running.wait_until_up()
        stamp = time.strftime("%b %e %H:%M:%S")
        with auth_log.open("a") as log:
            log.write(f"{stamp} vm sshd[123]: Invalid user admin from 192.0.2.10 port 40000\n")
        try:
            held.hold(2)
            startups = "ssh_access_sshd_listener_startups"
            held_found = eventually(
                lambda: _scrape_when(running, startups, 2, listener=listener), what="2 startups"
            )
        finally:
            held.close()
        events = "ssh_access_sshd_events_total"
        found = eventually(
            lambda: _scrape_when(running, events, 1, event="invalid_user"), what="the log line"
        )
        logs = running.logs()
        text = running.text()
    version = metadata.version("ssh-access-exporter")
    assert value(found, "ssh_access_build_info", version=version) == 1
    for name in WORKING_COLLECTORS:
        assert value(found, "ssh_access_collector_success", collector=name) == 1, (name, logs)
    # the host's sshd, read through /host and /host/proc: its config from the file parser (host binaries
    # are not executed in the container), its listener's title and its TCP connections
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_config_valid") is None  # only `sshd -T` tells
    assert value(found, "ssh_access_sshd_maxstartups_start") == 3
    assert value(found, "ssh_access_sshd_listener_maxstartups_full", listener=listener) == 6
    tcp = "ssh_access_sshd_tcp_connections"
    assert value(held_found, tcp, listener=listener, state="established") == 2
    # CAP_SYS_PTRACE: the listener's executable is compared with the host's sshd binary
    assert "needs CAP_SYS_PTRACE" not in logs, logs
    assert promtool_check(text) is None
    # the root filesystem is read-only: the auth log position went to the state volume
    assert [path.suffix for path in state.iterdir()] == [".json"], logs


def test_image_runs_as_nobody_with_less(image: str, sshd: Sshd, tmp_path: Path) -> None:
    """--user=65534:65534 and no capabilities: what the README's table says still works, works."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    listener = str(sshd.config)
    options = ("--user=65534:65534", "--cap-drop=ALL", "-v", f"{state}:{STATE_DIR}")
    with container(image, f"--collector.sshd.config={listener}", options=options) as running:
        found = running.wait_until_up()
        log = running.logs()
    for name in ("sshd", "tcpwrappers", "denyhosts", "fail2ban", "crowdsec", "sshguard", "watchlist"):
        assert value(found, "ssh_access_collector_success", collector=name) == 1, (name, log)
    # process titles are world-readable: the host's sshd is still seen
    assert value(found, "ssh_access_sshd_listener_startups", listener=listener) == 0
    # the firewall needs CAP_NET_ADMIN; the journal and auth log files are root's (or adm's)
    assert value(found, "ssh_access_collector_success", collector="firewall") == 0
    assert value(found, "ssh_access_collector_success", collector="authlog") == 0
    assert 'msg="collector failed" collector=firewall' in log, log
