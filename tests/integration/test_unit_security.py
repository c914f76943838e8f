"""The shipped systemd units, measured: `systemd-analyze security` scores them 2.0 or lower, and every
collector that works as root without a sandbox works under the units' own privileges, against a real
sshd, fail2ban-server, sshguard and CrowdSec each holding a ban, an auth log and the firewall; and what
is given up (legacy iptables tables without CAP_NET_RAW) says so.

systemd is not PID 1 on every machine these tests run on (a container), so the sandbox is applied from
the unit file's [Service] settings, the file parsed and nothing restated here: the user (DynamicUser= as
an unused uid, as systemd allocates one), the capability bounding set, the ambient capabilities,
NoNewPrivileges= (setpriv), ProtectProc= (a procfs mounted with that hidepid= in a private mount
namespace), SystemCallFilter= with SystemCallErrorNumber= and MemoryDenyWriteExecute= (seccomp filters
built through libseccomp, the syscall groups expanded by `systemd-analyze syscall-filter`). Those decide
what a collector can read and run. Not applied: the read-only filesystem and the other namespaces,
RestrictAddressFamilies=, RestrictNamespaces= and the like; `systemd-analyze verify`
(tests/unit/test_deploy.py, tests/integration/test_deb.py) checks them as systemd reads them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.e2e.golden import ENVIRONMENT
from tests.integration.harness import Crowdsec, Fail2banServer, NetNs, Sshd, Sshguard, require_root_and

REPOSITORY = Path(__file__).resolve().parents[2]
UNITS = [
    REPOSITORY / "deploy/systemd/ssh-access-exporter.service",
    REPOSITORY / "deploy/systemd/ssh-access-exporter-textfile.service",
]
EXPORTER = [sys.executable, "-m", "exporter"]
LINE = re.compile(r"^(?P<name>\S+) +(?P<word>works|absent|fails|disabled)\b")
OVERALL = re.compile(r"Overall exposure level for \S+: (?P<score>\d+\.\d+)")
DYNAMIC_UID = 61999  # in systemd's DynamicUser= range (61184-65519), which no account here uses
BANNED = "192.0.2.7"
BAN_SERIES = (
    'ssh_access_banned_addresses{jail="ip sshguard attackers",source="sshguard"}',
    'ssh_access_banned_addresses{jail="crowdsecurity/ssh-bf",source="crowdsec"}',
)
AUTH_LINE = (
    "2026-01-01T00:00:00+00:00 host sshd[4242]: Failed password for invalid user admin from "
    "198.51.100.9 port 50000 ssh2\n"
)  # a readable, non-empty log: the collector opens it (a first run starts counting at its end)


def _service(unit: Path) -> dict[str, list[str]]:
    """The [Service] section's settings, each key's values in order (systemd's own reading, short of
    line continuations, which the shipped units do not use)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _capabilities(values: list[str]) -> str:
    """setpriv's form of a capability setting: `-all,+net_admin,...` (the unit lists one set)."""
    names = [name.lower().removeprefix("cap_") for value in values for name in value.split()]
    return ",".join(["-all", *(f"+{name}" for name in names)])


def _sandbox(settings: dict[str, list[str]]) -> list[str]:
    """The command prefix that runs a process with the unit's user, capabilities, /proc and seccomp."""
    assert "User" not in settings or settings["User"] == ["root"], "a named user: resolve it here"
    assert "SupplementaryGroups" not in settings, "supplementary groups: apply them here"
    setpriv = ["setpriv"]
    if settings.get("DynamicUser") == ["yes"]:
        setpriv += [f"--reuid={DYNAMIC_UID}", f"--regid={DYNAMIC_UID}", "--clear-groups"]
    setpriv.append(f"--bounding-set={_capabilities(settings.get('CapabilityBoundingSet', []))}")
    ambient = _capabilities(settings.get("AmbientCapabilities", []))
    setpriv += [f"--inh-caps={ambient}", f"--ambient-caps={ambient}"]
    if settings.get("NoNewPrivileges") == ["yes"]:
        setpriv.append("--no-new-privs")
    hidepid = settings.get("ProtectProc", ["default"])[-1]
    setpriv += _seccomp(settings)
    if hidepid == "default":
        return setpriv
    mount = f"mount -t proc -o hidepid={hidepid} proc /proc"
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{mount} && exec "$@"',
        "sh",
        *setpriv,
    ]


# --- seccomp: SystemCallFilter= and MemoryDenyWriteExecute= as systemd builds them, through libseccomp ---

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
# allowed whatever the list says, so the service can start at all (systemd.exec(5), SystemCallFilter=)
ALWAYS_ALLOWED = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


def _expand(names: list[str]) -> set[str]:
    """System call names, `@group`s expanded with systemd's own table (`systemd-analyze syscall-filter`)."""
    found: set[str] = set()
    for name in names:
        if not name.startswith("@"):
            found.add(name)
            continue
        listing = subprocess.run(
            ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
        ).stdout
        members = [
            line.strip()
            for line in listing.splitlines()[1:]
            if line.strip() and not line.strip().startswith("#")
        ]
        found |= _expand(members)
    return found


def _allowed_syscalls(settings: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= read as systemd does: the first line an allow list (plus @default and the calls
    always allowed), each later `~` line taking its calls out."""
    lines = settings["SystemCallFilter"]
    assert not lines[0].startswith("~"), "an allow list first: a deny list would need another reading"
    allowed = _expand(lines[0].split()) | _expand(["@default"]) | ALWAYS_ALLOWED
    for line in lines[1:]:
        names = line.removeprefix("~").split()
        allowed = allowed - _expand(names) if line.startswith("~") else allowed | _expand(names)
    return allowed


def _load_seccomp(allowed: set[str], errno_code: int, deny_write_execute: bool) -> None:
    """Load the filters into this process (inherited across execve): every call not allowed fails with
    `errno_code`, and with `deny_write_execute` memory cannot be mapped writable and executable or made
    executable later, as MemoryDenyWriteExecute= does."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]  # fmt: skip
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    refuse = 0x00050000 | (errno_code & 0xFFFF)  # SCMP_ACT_ERRNO

    def number(name: str) -> int:
        return int(lib.seccomp_syscall_resolve_name(name.encode()))

    contexts = []
    if deny_write_execute:
        context = lib.seccomp_init(SCMP_ACT_ALLOW)
        for name, arg, mask, value in (
            ("mmap", 2, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC),
            ("mprotect", 2, PROT_EXEC, PROT_EXEC),
            ("pkey_mprotect", 2, PROT_EXEC, PROT_EXEC),
            ("shmat", 2, SHM_EXEC, SHM_EXEC),
        ):
            compare = _ArgCmp(arg, SCMP_CMP_MASKED_EQ, mask, value)
            assert lib.seccomp_rule_add_array(context, refuse, number(name), 1, ctypes.byref(compare)) == 0
        contexts.append(context)
    context = lib.seccomp_init(refuse)
    for name in sorted(allowed):
        if number(name) >= 0:  # negative: not a call of this architecture
            assert lib.seccomp_rule_add(context, SCMP_ACT_ALLOW, number(name), 0) == 0, name
    contexts.append(context)  # last: seccomp(2) itself may be among the calls it refuses
    for context in contexts:
        assert lib.seccomp_load(context) == 0


def _exec_filtered() -> None:
    """`python -c` entry: argv is [JSON of (allowed, errno, deny_write_execute), command...]."""
    allowed, errno_code, deny_write_execute = json.loads(sys.argv[1])
    _load_seccomp(set(allowed), errno_code, deny_write_execute)
    os.execvp(sys.argv[2], sys.argv[2:])


def _seccomp(settings: dict[str, list[str]]) -> list[str]:
    """The command prefix that runs a process under the unit's SystemCallFilter=, SystemCallErrorNumber=
    and MemoryDenyWriteExecute=."""
    errno_code = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
    plan = [
        sorted(_allowed_syscalls(settings)),
        errno_code,
        settings.get("MemoryDenyWriteExecute") == ["yes"],
    ]
    entry = "from tests.integration.test_unit_security import _exec_filtered; _exec_filtered()"
    return [sys.executable, "-c", entry, json.dumps(plan)]


def _words(out: str) -> dict[str, str]:
    """`check`'s verdicts, {collector: works|absent|fails|disabled}."""
    words = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, f"not NAME WORD REASON: {line!r}"
        words[match["name"]] = match["word"]
    return words


def _successes(prom: str) -> dict[str, str]:
    """{collector: value} of ssh_access_collector_success in a textfile."""
    found = re.findall(r'^ssh_access_collector_success\{collector="([^"]+)"\} (\S+)$', prom, re.MULTILINE)
    return dict(found)


class Outcome(NamedTuple):
    """One run's view: `check`'s verdicts, the textfile's collector_success values and the textfile."""

    words: dict[str, str]
    success: dict[str, str]
    prom: str


def _as_root_and_as_the_unit(netns: NetNs, flags: list[str], directory: Path) -> tuple[Outcome, Outcome]:
    """`check` and one textfile collection with `flags` in `netns`: as root, then under the unit's
    privileges (the textfile unit's, the same as the server's: tests/unit/test_textfile.py). The state
    and textfile directories are root's, as on a host where root ran an earlier version."""
    outcomes = []
    for name, prefix in (("root", []), ("unit", _sandbox(_service(UNITS[1])))):
        state, output = directory / name / "state", directory / name / "textfile"
        state.mkdir(parents=True, mode=0o700)
        output.mkdir(mode=0o755)
        check = subprocess.run(
            netns.command([*ENVIRONMENT, *prefix, *EXPORTER, "check", *flags]),
            capture_output=True, text=True, check=False, timeout=120, cwd=REPOSITORY,
        )  # fmt: skip
        prom = output / "ssh_access.prom"
        textfile = subprocess.run(
            netns.command([
                *ENVIRONMENT, *prefix, *EXPORTER, "textfile", f"--output={prom}",
                f"--collector.authlog.state-dir={state}", *flags,
            ]),
            capture_output=True, text=True, check=False, timeout=120, cwd=REPOSITORY,
        )  # fmt: skip
        assert prom.exists(), f"{name}: textfile not written: {textfile.stderr[-2000:]}"
        text = prom.read_text()
        outcomes.append(Outcome(_words(check.stdout), _successes(text), text))
    return outcomes[0], outcomes[1]


def _assert_the_same(root: Outcome, unit: Outcome, works: set[str]) -> None:
    """The same verdict for every collector, `works` among those that work, the same collector_success."""
    assert unit.words == root.words, (root.words, unit.words)
    assert works <= {name for name, word in unit.words.items() if word == "works"}, unit.words
    assert unit.success == root.success, (root.success, unit.success)


def _value(prom: str, series: str) -> float | None:
    """The value of one series (name and labels as written) in a textfile, None when absent."""
    for line in prom.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_analyze_security_scores_the_unit_2_0_or_lower(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    copy = tmp_path / unit.name
    shutil.copy(unit, copy)
    run = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = OVERALL.search(run.stdout)
    assert match, run.stdout + run.stderr
    assert float(match["score"]) <= 2.0, run.stdout


def test_the_sandbox_prefix_applies_the_units_privileges(tmp_path: Path) -> None:
    """What the emulation gives the process, read back from its own /proc: not uid 0, exactly the unit's
    capabilities (bounding, effective and ambient alike), no new privileges, other uids' processes hidden
    only when they cannot be ptrace-read."""
    require_root_and("setpriv", "unshare")
    settings = _service(UNITS[0])
    probe = (
        "import mmap, os, pathlib\n"
        "print(pathlib.Path('/proc/self/status').read_text())\n"
        "for name, call in (('setpriority', lambda: os.setpriority(os.PRIO_PROCESS, 0, 1)),\n"
        "                   ('setgroups', lambda: os.setgroups([])),\n"
        "                   ('wx', lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC))):\n"
        "    try:\n"
        "        call()\n"
        "        print(f'refused {name}: no')\n"
        "    except OSError as error:\n"
        "        print(f'refused {name}: {error.strerror}')\n"
    )
    run = subprocess.run(
        [*_sandbox(settings), sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPOSITORY,
    )
    status = dict(line.split(":\t", 1) for line in run.stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == str(DYNAMIC_UID)
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"].strip() == "2" and status["Seccomp_filters"].strip() == "2"  # calls, W^X
    # refused by the filters: raising one's own niceness and W^X memory need no capability
    for name in ("setpriority", "setgroups", "wx"):
        assert f"refused {name}: Operation not permitted" in run.stdout, run.stdout[-300:]
    wanted = set(settings["CapabilityBoundingSet"][0].split())
    masks = {
        "CAP_DAC_OVERRIDE": 1 << 1,
        "CAP_NET_ADMIN": 1 << 12,
        "CAP_NET_RAW": 1 << 13,
        "CAP_SYS_PTRACE": 1 << 19,
    }
    assert wanted <= masks.keys(), "a capability this test does not know: add its bit"
    expected = sum(masks[name] for name in wanted)
    for field in ("CapBnd", "CapEff", "CapAmb"):
        assert int(status[field], 16) == expected, (field, status[field])


def test_every_collector_works_under_the_units_privileges_as_it_does_as_root(tmp_path: Path) -> None:
    """`check` and one textfile collection, as root and as the unit, in one network namespace with sshd,
    fail2ban-server (one ban) and an auth log: the same verdict for every collector, every `works` still
    working, the same collector_success in the textfile, sshd's config still from `sshd -T` and the ban
    still read through fail2ban's socket."""
    require_root_and("setpriv", "unshare", "ip", "sshd", "fail2ban-server")
    log = tmp_path / "auth.log"
    log.write_text(AUTH_LINE)
    with NetNs(tmp_path / "ns") as netns, Sshd(tmp_path / "sshd", netns=netns) as sshd:
        jail = f"[sshd]\nenabled = true\nfilter = sshd\nport = {sshd.port}\nlogpath = {log}\n"
        with Fail2banServer(tmp_path / "fail2ban", netns, jail) as fail2ban:
            fail2ban.client("set", "sshd", "banip", BANNED)
            flags = [
                f"--collector.sshd.config={sshd.config}",
                f"--collector.fail2ban.socket={fail2ban.socket}",
                f"--collector.fail2ban.db={fail2ban.db}",
                f"--collector.fail2ban.config-dir={fail2ban.conf}",
                f"--collector.authlog.files={log}",
                "--collector.authlog.journal=off",
            ]
            root, unit = _as_root_and_as_the_unit(netns, flags, tmp_path)
    _assert_the_same(root, unit, works={"sshd", "fail2ban", "authlog", "firewall"})
    # sshd's config from `sshd -T` (host keys read), the ban through fail2ban's root-only socket
    for series in (
        'ssh_access_sshd_config_source{source="sshd_t"}',
        'ssh_access_fail2ban_data_source{source="socket"}',
        'ssh_access_banned_addresses{jail="sshd",source="fail2ban"}',
    ):
        assert _value(root.prom, series) == _value(unit.prom, series) == 1.0, series


def test_sshguard_and_crowdsec_work_under_the_units_privileges_as_they_do_as_root(tmp_path: Path) -> None:
    """The other ban sources, live: sshguard's nft set (one address blocked) and CrowdSec's decisions,
    through cscli and through the local API with the bouncer's key."""
    require_root_and("setpriv", "unshare", "ip", "sshguard", "crowdsec", "cscli")
    with (
        NetNs(tmp_path / "ns") as netns,
        Sshguard(tmp_path / "sshguard", netns) as sshguard,
        Crowdsec(tmp_path / "crowdsec", netns) as crowdsec,
    ):
        sshguard.attack("192.0.2.44", times=30)
        crowdsec.attack("198.51.100.44", times=10)
        flags = ["--no-collector.authlog", "--no-collector.fail2ban"]
        flags.append(f"--collector.crowdsec.bouncer-config={crowdsec.bouncer_config}")
        deadline = time.monotonic() + 60
        while True:  # both have acted on the attacks once root sees the two bans
            root, unit = _as_root_and_as_the_unit(netns, flags, tmp_path / str(time.monotonic_ns()))
            banned = [_value(root.prom, series) for series in BAN_SERIES]
            if banned == [1.0, 1.0] or time.monotonic() > deadline:
                break
            time.sleep(1)
    _assert_the_same(root, unit, works={"sshguard", "crowdsec", "firewall"})
    for series in BAN_SERIES:
        assert _value(root.prom, series) == _value(unit.prom, series) == 1.0, series


@pytest.mark.parametrize("reader", ["python-iptables", "iptables-legacy-save"])
def test_on_a_legacy_iptables_host_the_firewall_fails_for_want_of_cap_net_raw_until_the_drop_in(
    reader: str, tmp_path: Path
) -> None:
    """What the unit gives up: legacy iptables tables are read through a raw socket. With one there the
    firewall collector fails under the unit and says which capability it misses; the drop-in the unit's
    comments give (CAP_NET_RAW added to both sets) brings it back, still as the dynamic user."""
    require_root_and("setpriv", "unshare", "ip", "iptables-legacy")
    only_firewall = ["--no-collector.crowdsec", "--no-collector.sshguard", "--no-collector.authlog"]
    only_firewall += ["--no-collector.fail2ban", "--no-collector.sshd", "--no-collector.tcpwrappers"]
    only_firewall.append(f"--collector.firewall.legacy-reader={reader}")  # ctypes under W^X, or the command
    settings = _service(UNITS[0])
    dropin = {**settings}
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        dropin[key] = [*settings[key], "CAP_NET_RAW"]
    with NetNs(tmp_path / "ns") as netns:
        added = netns.run(["iptables-legacy", "-A", "INPUT", "-s", "203.0.113.5", "-j", "DROP"])
        if added.returncode != 0:
            pytest.skip(f"no legacy iptables here: {added.stderr.strip()}")
        verdicts = {}
        for name, prefix in (("unit", _sandbox(settings)), ("drop-in", _sandbox(dropin))):
            run = subprocess.run(
                netns.command([*ENVIRONMENT, *prefix, *EXPORTER, "check", *only_firewall]),
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                cwd=REPOSITORY,
            )
            verdicts[name] = next(line for line in run.stdout.splitlines() if line.startswith("firewall "))
    assert LINE.match(verdicts["unit"])["word"] == "fails", verdicts  # type: ignore[index]
    assert verdicts["unit"].endswith("(needs CAP_NET_ADMIN, and CAP_NET_RAW for legacy iptables tables)")
    assert LINE.match(verdicts["drop-in"])["word"] == "works", verdicts  # type: ignore[index]
