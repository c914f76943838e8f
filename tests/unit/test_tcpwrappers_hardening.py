"""TCP wrappers under hostile or broken input: bounded time and memory, libwrap's verdicts all the same.

Issue 11: wildcard patterns backtracked (`**********X` against an IPv6 address: 24 s), pattern files were
followed once per reference (a file naming itself 8 times: > 110 s).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.paths import HostPaths
from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from exporter.sources.tcpwrappers.evaluate import wildcard_match
from exporter.sources.tcpwrappers.reader import TcpWrappersReader, summarize
from exporter.sources.tcpwrappers.syntax import pattern_tokens


def _regex_wildcard_match(text: str, pattern: str) -> bool:
    """The matcher before issue 11 (a backtracking regex): right, and exponential in the `*`s."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@settings(max_examples=3000, deadline=None)
@given(text=st.text("ab.:", max_size=10), pattern=st.text("ab.:*?", max_size=8))
def test_wildcard_verdicts_are_the_regex_verdicts(text: str, pattern: str) -> None:
    assert wildcard_match(text, pattern) == _regex_wildcard_match(text, pattern)


def test_wildcard_with_many_stars_is_fast() -> None:
    address = "2001:db8:1234:5678:9abc:def0:1234:5678"
    rules = AccessRules(
        parse_table("", "/etc/hosts.allow"), parse_table("sshd: **********X\n", "/etc/hosts.deny")
    )
    started = time.monotonic()
    found = evaluate(rules, client=ClientInfo(address))
    assert not wildcard_match(address, "*" * 2000 + "X") and wildcard_match(address, "*?" * 30 + "8")
    assert time.monotonic() - started < 2.0  # 32 s before
    assert (found.verdict, found.if_unresolved) == ("depends_on_dns", "allow")  # a host name could match


def _rootfs(tmp_path: Path, files: dict[str, str]) -> TcpWrappersReader:
    for name, text in files.items():
        path = tmp_path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())


def test_pattern_file_naming_itself_is_read_once(tmp_path: Path) -> None:
    """Each reference was followed again down to depth 8: 8^8 matches per client."""
    reader = _rootfs(
        tmp_path,
        {
            "/etc/hosts.deny": "sshd: /etc/self\nsshd: /etc/self@/etc/self\n",
            "/etc/self": "/etc/self " * 8 + "192.0.2.1 .example.org\n",
        },
    )
    started = time.monotonic()
    snapshot = reader.read()
    verdicts = [evaluate(snapshot.rules, client=ClientInfo(a)) for a in ("192.0.2.1", "192.0.2.2")]
    assert time.monotonic() - started < 2.0  # > 110 s before
    assert [v.verdict for v in verdicts] == ["deny", "depends_on_dns"]
    assert snapshot.summary.lookup_rules["/etc/hosts.deny"] == 2


def test_pattern_files_chain_deeper_than_eight(tmp_path: Path) -> None:
    """libwrap follows a chain of 12 files (tcpdmatch: denied); the old depth cap of 8 said allow."""
    files = {f"/etc/p{i}": f"/etc/p{i + 1}\n" for i in range(12)}
    files |= {"/etc/p12": "192.0.2.0/24\n", "/etc/hosts.deny": "sshd: /etc/p0\n"}
    snapshot = _rootfs(tmp_path, files).read()
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.7")).verdict == "deny"
    assert evaluate(snapshot.rules, client=ClientInfo("198.51.100.7")).verdict == "allow"


def test_pattern_file_shared_by_many_rules_is_expanded_once(tmp_path: Path) -> None:
    deny = "".join(f"sshd: 198.51.100.{i % 250} /etc/big\n" for i in range(2000))
    big = " ".join(f"203.0.113.{i % 250}" for i in range(20_000)) + "\n"
    reader = _rootfs(tmp_path, {"/etc/hosts.deny": deny, "/etc/big": big})
    started = time.monotonic()
    snapshot = reader.read()
    assert summarize(snapshot.rules).lookup_rules["/etc/hosts.deny"] == 0
    assert time.monotonic() - started < 4.0


def test_pattern_tokens_are_c_strings_split_at_c_whitespace() -> None:
    """fscanf("%s"): \\x1c and U+00A0 are no separators, a NUL ends the token; no ValueError later."""
    assert pattern_tokens(" a\x1cb\tc\0d \0e \xa0f\n\v192.0.2.1\f") == ("a\x1cb", "c", "\xa0f", "192.0.2.1")


def test_long_numbers_in_pattern_files(tmp_path: Path) -> None:
    """int() of 5,000 digits raises; libwrap's atoi reads a number nothing matches."""
    reader = _rootfs(
        tmp_path,
        {
            "/etc/hosts.deny": "sshd: /etc/long\n",
            "/etc/long": f"192.0.2.0/{'9' * 5000} {'1' * 5000}.0.0.0/8 [2001:db8::]/{'0' * 5000}32\n",
        },
    )
    snapshot = reader.read()
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.1")).verdict == "allow"
    assert evaluate(snapshot.rules, client=ClientInfo("2001:db8::1")).verdict == "deny"
