"""The config file parser against the real `sshd -t` (Debian's openssh-server): on each fixture config,
sshd refuses to start exactly when the parser says it would, and at a line the parser names.

The fixtures (tests/fixtures/sshd_config) are rootfs trees; sshd reads a copy whose absolute Include
paths are moved under the copy, so the line numbers are the fixture's. sshd -t needs a host key: one is
generated for the module and passed with `-h`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.binary import read_version
from exporter.sources.sshd.config import EffectiveConfig, parse_sshd_t, read_config_files
from exporter.sources.sshd.keywords import Keywords
from tests.integration.harness import SSHD, require_root_and

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sshd_config"
CASES = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())
MAIN = "/etc/ssh/sshd_config"
# `FILE line N: reason` and `FILE: line N: Bad configuration option: X`
_SSHD_LINE = re.compile(r"^(?P<file>\S+?):? line (?P<line>\d+):", re.MULTILINE)


@pytest.fixture(scope="module", name="host_key")
def host_key_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root_and(SSHD, "ssh-keygen")
    key = tmp_path_factory.mktemp("hostkey") / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return key


def _sshd(mode: str, config: Path, host_key: Path) -> subprocess.CompletedProcess[str]:
    """The real sshd's verdict on `config`: `-t` (test) or `-T` (print the effective values)."""
    command = [SSHD, mode, "-f", str(config), "-h", str(host_key)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _copy_for_sshd(case: str, root: Path) -> Path:
    shutil.copytree(FIXTURES / case, root)
    for path in root.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace("Include /etc/ssh/", f"Include {root}/etc/ssh/"))
    return root / MAIN.lstrip("/")


@pytest.mark.parametrize("case", CASES)
def test_sshd_refuses_exactly_what_the_parser_refuses(case: str, host_key: Path, tmp_path: Path) -> None:
    version = read_version(Path(SSHD))
    assert version is not None
    parsed = read_config_files(
        HostPaths(rootfs=FIXTURES / case), MAIN, Keywords.of(version.version, version.release)
    )
    root = tmp_path / "root"
    config = _copy_for_sshd(case, root)
    run = _sshd("-t", config, host_key)
    refusals = {(problem.file, problem.line) for problem in parsed.refusals}
    assert parsed.errors == parsed.refusals  # every fixture file is readable
    assert (run.returncode != 0) == bool(refusals), (run.stderr, [str(p) for p in parsed.refusals])
    named = {
        (match["file"].removeprefix(str(root)), int(match["line"]))
        for match in _SSHD_LINE.finditer(run.stderr)
    }
    if run.returncode != 0:
        # sshd stops at the first fatal value, or names every unknown keyword: each is one of ours
        assert named and named <= refusals, (run.stderr, sorted(refusals))


# One-line configs on the edges of sshd's reading of the values the exporter reports (names that need
# a lookup are left out: sshd resolves ListenAddress host names, the parser does not).
LINES = [
    "MaxStartups 10:30:60:99",
    "MaxStartups 10:30:60x",
    "MaxStartups 10x",
    "MaxStartups 10:30",
    "MaxStartups 0",
    "MaxStartups 5:30:3",
    "MaxStartups 10:0:100",
    "MaxStartups 10:101:100",
    "MaxStartups 10 20",
    "LoginGraceTime 2x",
    "LoginGraceTime 1h2m3s",
    "LoginGraceTime 1H",
    "LoginGraceTime -1",
    "LoginGraceTime 2147483648",
    "MaxAuthTries 0",
    "MaxAuthTries -1",
    "MaxAuthTries 3x",
    "MaxAuthTries 99999999999",
    "PerSourceMaxStartups 0",
    "PerSourceMaxStartups none",
    "PerSourceMaxStartups None",
    "PerSourceNetBlockSize 33",
    "PerSourceNetBlockSize 24:129",
    "PerSourceNetBlockSize 24:64:1",
    "PerSourceNetBlockSize 24x",
    "PerSourcePenalties yes",
    "Port 0",
    "Port 65536",
    "Port 22x",
    "Port ssh",
    "Port 22 23",
    "Port",
    "Port #",
    "Port=22",
    'Port "22',
    "ListenAddress 192.0.2.1",
    "ListenAddress 192.0.2.300",
    "ListenAddress [2001:db8::1]:2222",
    "ListenAddress 192.0.2.1:99999",
    "PidFile none",
    "PidFile",
    "Ciphers",
    "MaxStartupz 5",
    "5 MaxStartups",
    "DebianBanner no",
    "GSSAPIKeyExchange no",
    "UsePrivilegeSeparation sandbox",
    "PAMAuthenticationViaKbdInt no",
    "Protocol 2",
]


@pytest.mark.parametrize("line", LINES)
def test_single_lines_agree_with_sshd(line: str, host_key: Path, tmp_path: Path) -> None:
    version = read_version(Path(SSHD))
    assert version is not None
    config = tmp_path / "sshd_config"
    config.write_text(line + "\n")
    parsed = read_config_files(HostPaths(), str(config), Keywords.of(version.version, version.release))
    run = _sshd("-t", config, host_key)
    assert (run.returncode != 0) == bool(parsed.refusals), (run.stderr, [str(p) for p in parsed.errors])


# Repeated keywords, one-value forms and Includes: the values the exporter reports, as sshd computes them.
EFFECTIVE = {
    "repeats": (
        "MaxStartups 5:30:10\nMaxStartups 7:30:12\nPerSourceMaxStartups 3\nPerSourceMaxStartups 5\n"
        "PerSourceNetBlockSize 16:64\nPerSourceNetBlockSize 24\nMaxAuthTries 3\nMaxAuthTries 5\n"
        "LoginGraceTime 30\nLoginGraceTime 1m\nPidFile /run/a.pid\nPidFile /run/b.pid\n"
    ),
    "include-then-main": "Include {dir}/*.conf\nMaxStartups 10:30:100\nMaxAuthTries 4\n",
    "one-netblock": "PerSourceNetBlockSize 20\n",
    "defaults": "",
}
DROP_INS = {"10.conf": "MaxStartups 3:50:6\nMaxAuthTries 2\n", "20.conf": "PerSourceMaxStartups 2\n"}


@pytest.mark.parametrize("case", sorted(EFFECTIVE))
def test_effective_values_agree_with_sshd_t(case: str, host_key: Path, tmp_path: Path) -> None:
    version = read_version(Path(SSHD))
    assert version is not None
    drop_ins = tmp_path / "sshd_config.d"
    drop_ins.mkdir()
    for name, text in DROP_INS.items():
        (drop_ins / name).write_text(text)
    config = tmp_path / "sshd_config"
    config.write_text(EFFECTIVE[case].format(dir=drop_ins))
    parsed = read_config_files(HostPaths(), str(config), Keywords.of(version.version, version.release))
    assert parsed.errors == []
    run = _sshd("-T", config, host_key)
    assert run.returncode == 0, run.stderr
    from_files = EffectiveConfig.from_options(parsed.options, "file", version.version)
    from_sshd = EffectiveConfig.from_options(parse_sshd_t(run.stdout), "sshd_t", version.version)
    fields = ("max_startups", "per_source_max_startups", "per_source_netblock_v4", "per_source_netblock_v6",
              "login_grace_time", "max_auth_tries", "pid_file", "ports")  # fmt: skip
    assert {f: getattr(from_files, f) for f in fields} == {f: getattr(from_sshd, f) for f in fields}
