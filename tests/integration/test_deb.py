"""The Debian package (`make deb`) as an operator gets it: built with dh-virtualenv, clean under lintian,
installed with apt into a throwaway Debian 12 root (mmdebstrap, from this machine's package mirror),
where the command runs, the unit verifies and a purge leaves nothing behind.

Fast enough for every run: the package is built once per content of its inputs (a cache keyed by their
hash) and the Debian root once a day (a tarball keyed by the date), both under CACHE_DIR. Measured on
2 cores shared with other builds: the package 47 to 148 s (pip builds the sdists and mypyc compiles the
hot path), the root 65 s, lintian, apt's install (python3 from the mirror) and the checks about 45 s,
the sdist and wheel 25 s: a cold run takes 3 to 4.5 minutes, a warm one about 1.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import require_root_and

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("SSH_ACCESS_EXPORTER_TEST_CACHE", "/var/cache/ssh-access-exporter-tests"))
SUITE = "bookworm"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UNIT = "/lib/systemd/system/ssh-access-exporter.service"
VENV = "/opt/venvs/ssh-access-exporter"
BUILD_TOOLS = ("git", "dpkg-buildpackage", "dh_virtualenv", "lintian", "mmdebstrap", "unshare", "chroot")


def _run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


# What goes into the package: the build copies the whole tree, but only these are read from it, so an
# edit elsewhere (a test, the docs) reuses the cached build.
PACKAGE_INPUTS = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "MANIFEST.in",
    "exporter",
    "debian",
    "deploy/systemd",
)


def _git_files(*paths: str) -> set[str]:
    """The files under `paths` that git knows, committed or not (what debian/build-deb.sh copies)."""
    argv = ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = _run([*argv, "--", *paths])
    assert listed.returncode == 0, listed.stderr
    return {name for name in listed.stdout.split("\0") if name and os.path.lexists(ROOT / name)}


def _tree_hash() -> str:
    """The hash of the package's inputs as debian/build-deb.sh copies them."""
    digest = hashlib.sha256()
    for name in sorted(_git_files(*PACKAGE_INPUTS)):
        path = ROOT / name
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:20]


@pytest.fixture(scope="module")
def deb() -> Path:
    """The package built from this tree, or the one an earlier run built from the same content."""
    require_root_and(*BUILD_TOOLS)
    builds = CACHE_DIR / "deb"
    target = builds / _tree_hash()
    found = sorted(target.glob("ssh-access-exporter_*.deb"))
    if found:
        return found[0]
    if builds.exists():  # builds of other trees: never needed again
        for old in builds.iterdir():
            shutil.rmtree(old, ignore_errors=True)
    started = datetime.datetime.now(datetime.UTC)
    proc = _run([str(ROOT / "debian/build-deb.sh"), str(target)])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    seconds = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    (target / "build-seconds").write_text(f"{seconds:.0f}\n")
    print(f"make deb: {seconds:.0f} s")
    return Path(proc.stdout.strip().splitlines()[-1])


def _mirror() -> str:
    """The Debian mirror this machine's apt uses for the suite (one-line or deb822 sources)."""
    sources = Path("/etc/apt/sources.list")
    entries: list[tuple[str, list[str]]] = []
    for path in [sources, *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], [words[2]]))
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, sep, value in (line.partition(":") for line in stanza.splitlines())
                if sep and not key.startswith("#")
            )
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                entries.extend(
                    (uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split()
                )
    for uri, suites in entries:
        if SUITE in suites:
            return uri
    return "http://deb.debian.org/debian"


def _base_tarball() -> Path:
    """A minimal Debian 12 (apt variant, plus systemd as on any server) made today, then reused."""
    tarballs = CACHE_DIR / "mmdebstrap"
    tarball = tarballs / f"{SUITE}-apt-systemd-{datetime.date.today():%Y%m%d}.tar"
    if tarball.exists():
        return tarball
    tarballs.mkdir(parents=True, exist_ok=True)
    for old in tarballs.glob(f"{SUITE}-*"):  # other days', and a run cut short
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    partial = tarball.with_suffix(".partial.tar")  # mmdebstrap picks the format by the extension
    proc = _run(
        [
            "mmdebstrap",
            "--variant=apt",
            "--include=systemd",
            "--skip=cleanup/apt/lists",  # apt can install the package's dependencies without an update
            SUITE,
            str(partial),
            _mirror(),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    partial.rename(tarball)
    return tarball


@pytest.fixture(scope="module")
def debian_root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh root from the day's tarball, with the package installed by apt as an operator would."""
    root = tmp_path_factory.mktemp("debian-root")
    unpacked = _run(["tar", "--extract", "--file", str(_base_tarball()), "--directory", str(root)])
    assert unpacked.returncode == 0, unpacked.stderr
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")  # apt fetches python3 from the mirror
    shutil.copy(deb, root / "tmp" / deb.name)
    installed = _in_root(root, "apt-get", "install", "--yes", "--no-install-recommends", f"/tmp/{deb.name}")
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-4000:]
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _in_root(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command chrooted into `root`, with its own /proc in a PID and mount namespace of its own."""
    script = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"]
    return _run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", script, str(root), *env, *argv])


def test_package_name_and_version_come_from_pyproject(deb: Path) -> None:
    arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
    assert deb.name == f"ssh-access-exporter_{VERSION}_{arch}.deb"
    fields = _run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Depends"]).stdout
    assert f"Version: {VERSION}\n" in fields
    assert "python3 (>= 3.11)" in fields


def test_lintian_has_no_errors_or_warnings(deb: Path) -> None:
    """What lintian still tags is overridden in debian/ssh-access-exporter.lintian-overrides, with why."""
    proc = _run(["lintian", "--pedantic", "--fail-on", "error,warning", str(deb)])
    tags = [line for line in proc.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert proc.returncode == 0 and tags == [], proc.stdout + proc.stderr


COLLECTORS = {
    "authlog",
    "crowdsec",
    "denyhosts",
    "fail2ban",
    "firewall",
    "sshd",
    "sshguard",
    "tcpwrappers",
    "watchlist",
}


def test_command_runs_in_a_fresh_debian_root(debian_root: Path) -> None:
    version = _in_root(debian_root, "ssh-access-exporter", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"ssh-access-exporter {VERSION}"
    # `check` on a bare Debian: one line per collector; no sshd here, and exit 1 exactly when one fails.
    checked = _in_root(debian_root, "ssh-access-exporter", "check")
    statuses = dict(line.split()[:2] for line in checked.stdout.splitlines())
    assert set(statuses) == COLLECTORS, checked.stdout + checked.stderr
    assert set(statuses.values()) <= {"works", "absent", "fails", "disabled"}
    assert statuses["sshd"] == "absent"
    failing = sorted(name for name, status in statuses.items() if status == "fails")
    assert checked.returncode == (1 if failing else 0), checked.stdout + checked.stderr
    without = _in_root(debian_root, "ssh-access-exporter", "check", *(f"--no-collector.{n}" for n in failing))
    assert without.returncode == 0, without.stdout + without.stderr
    # A documentation address, diagnosed as JSON: the address and the layers asked.
    diagnosed = _in_root(debian_root, "ssh-access-exporter", "diagnose", "192.0.2.1", "--json")
    assert diagnosed.returncode in {0, 1}, diagnosed.stderr
    assert '"address": "192.0.2.1"' in diagnosed.stdout
    assert '"layers"' in diagnosed.stdout


def test_virtualenv_has_the_compiled_hot_path_and_only_pinned_distributions(debian_root: Path) -> None:
    python = f"{VENV}/bin/python"
    compiled = _in_root(
        debian_root, python, "-c", "import exporter.sources.authlog.fast.linescan as m; print(m.COMPILED)"
    )
    assert compiled.stdout.strip() == "True", compiled.stderr
    journal = _in_root(debian_root, python, "-c", "from systemd import journal; print(journal.Reader)")
    assert journal.returncode == 0, journal.stderr
    listed = _in_root(
        debian_root,
        python,
        "-c",
        "import importlib.metadata as m; print(*(f'{d.name}=={d.version}' for d in m.distributions()))",
    )
    assert listed.returncode == 0, listed.stderr
    pins = {
        _normalise(line.split("==")[0]): line.split("==")[1]
        for line in (ROOT / "debian/constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    installed = {_normalise(line.split("==")[0]): line.split("==")[1] for line in listed.stdout.split()}
    assert installed.pop("ssh-access-exporter") == VERSION
    assert {name: pins.get(name) for name in installed} == installed  # nothing unpinned, no other version


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_unit_defaults_and_command_path(debian_root: Path) -> None:
    unit = (debian_root / UNIT.lstrip("/")).read_text()
    (exec_start,) = re.findall(r"^ExecStart=(\S+)", unit, re.MULTILINE)
    assert exec_start == "/usr/bin/ssh-access-exporter"
    assert _in_root(debian_root, "test", "-x", exec_start).returncode == 0
    assert (debian_root / "usr/bin/ssh-access-exporter").readlink() == Path(f"{VENV}/bin/ssh-access-exporter")
    conffiles = (debian_root / "var/lib/dpkg/info/ssh-access-exporter.conffiles").read_text().split()
    assert conffiles == ["/etc/default/ssh-access-exporter"]
    assert (debian_root / "etc/default/ssh-access-exporter").read_text() == (
        ROOT / "deploy/systemd/ssh-access-exporter.default"
    ).read_text()
    enabled = debian_root / "etc/systemd/system/multi-user.target.wants/ssh-access-exporter.service"
    assert enabled.readlink() == Path(UNIT)  # enabled at installation, as deb-systemd-helper does
    if (debian_root / "usr/bin/systemd-analyze").exists():
        verified = _in_root(
            debian_root, "systemd-analyze", "verify", "--man=no", "ssh-access-exporter.service"
        )
        assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr


def test_purge_leaves_nothing(debian_root: Path) -> None:
    # As StateDirectory= makes it for the unit's dynamic user: the state under /var/lib/private, and a link.
    state = debian_root / "var/lib/private/ssh-access-exporter"
    state.mkdir(parents=True)
    (state / "authlog.json").write_text("{}")
    (debian_root / "var/lib/ssh-access-exporter").symlink_to("private/ssh-access-exporter")
    purged = _in_root(debian_root, "apt-get", "purge", "--yes", "ssh-access-exporter")
    assert purged.returncode == 0, purged.stdout[-4000:] + purged.stderr[-4000:]
    for path in (
        VENV,
        "/usr/bin/ssh-access-exporter",
        UNIT,
        "/etc/default/ssh-access-exporter",
        "/var/lib/ssh-access-exporter",
        "/var/lib/private/ssh-access-exporter",
    ):
        assert not os.path.lexists(debian_root / path.lstrip("/")), path


def test_python_build_makes_an_sdist_that_builds_the_wheel(tmp_path: Path) -> None:
    """`python -m build` builds the sdist, then the wheel from the sdist alone: what pip install needs is in
    it (pure Python here for speed; the compiled modules are the same .py files), and nothing bulky."""
    environment = {**os.environ, "SSH_ACCESS_EXPORTER_PURE_PYTHON": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    base = f"ssh_access_exporter-{VERSION}"
    with tarfile.open(tmp_path / f"{base}.tar.gz") as sdist:
        members = {name.removeprefix(f"{base}/") for name in sdist.getnames()}
    needed = {"pyproject.toml", "setup.py", "README.md", "PKG-INFO", "exporter/__main__.py"}
    needed |= {"deploy/systemd/ssh-access-exporter.service", "deploy/systemd/ssh-access-exporter.default"}
    assert needed <= members
    modules = {name for name in _git_files("exporter") if name.endswith(".py")}
    assert modules <= members
    assert not [name for name in members if name.startswith(("tests/", "docs/", "debian/", "grafana/"))]
    assert not [name for name in members if name.endswith((".so", ".c"))]
    assert (tmp_path / f"{base}.tar.gz").stat().st_size < 1_000_000
    with zipfile.ZipFile(tmp_path / f"{base}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"{base}.dist-info/entry_points.txt").decode()
    assert modules <= names
    assert "ssh-access-exporter = exporter.__main__:main" in entry_points
