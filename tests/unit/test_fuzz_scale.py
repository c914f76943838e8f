"""Huge and hostile inputs to every parser: handled in bounded, linear time, with only the caller's errors.

Each case builds an input of size n and of 4n (the 4n one is the size the issue names: a 1 MB log line, a
100,000-pattern hosts.deny rule, a 10 MB logical line of `\\` continuations, ...), runs the parser's fuzz
target on both (tests/fuzz/targets.py: the parser fed as its caller feeds it, only the caller's errors
allowed) and asserts

- the growth from n to 4n is linear: the ratio of best times under LINEAR (8; linear is ~4, quadratic
  ~16), which holds on a loaded machine because both sizes are timed under the same load (and is
  measured once more when a burst of load spoils the first measurement);
- the 4n input takes under `bound` seconds: at least 10x what it took on a 2-core machine with a load
  average of 7 from other test suites (the slowest, 50,000 hosts.deny lines, 1.4 s; most under 0.3 s),
  so only a change of complexity or a hang fails it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from exporter.sources.fail2ban.protocol import END
from tests.fuzz.targets import TARGETS
from tests.fuzz.timing import LINEAR, best_growth, ratio, seconds

pytestmark = pytest.mark.unit

STAMP = b"Nov 23 19:04:34 host sshd[4242]: "


@dataclass(frozen=True)
class Case:
    target: str
    make: Callable[[int], bytes]
    n: int  # the small size; the large one is 4n
    bound: float  # seconds for the 4n input


def _pattern(i: int) -> bytes:
    """A hosts.deny pattern of every kind libwrap matches differently."""
    kinds = (b"192.0.2.%d", b"198.51.100.0/255.255.255.%d", b"[2001:db8::%x]/64", b"h%d.example.", b"*%d*")
    return kinds[i % len(kinds)] % (i % 250)


def _pickle_list(n: int) -> bytes:
    return pickle.dumps((0, [f"192.0.2.{i % 250}" for i in range(n)]), 4) + END


def _repeat(head: bytes, unit: bytes, tail: bytes = b"") -> Callable[[int], bytes]:
    """Inputs of about n bytes: head, unit repeated, tail."""
    return lambda n: head + unit * max(1, n // len(unit)) + tail


def _joined(head: bytes, item: Callable[[int], bytes], sep: bytes, tail: bytes) -> Callable[[int], bytes]:
    """Inputs of n items: head, item(0) sep item(1) ..., tail."""
    return lambda n: head + sep.join(item(i) for i in range(n)) + tail


MB4 = 1 << 18  # the small size of the "1 MB" cases
TCP = b"   0: 0100007F:0016 0100007F:A1B2 0A 00000000:00000000 00:00000000 00000000 0 0 1234 1\n"
NFT_SET = b'{"set":{"family":"inet","table":"t","name":"s%d","type":"ipv4_addr","elem":["192.0.2.7"]}}'
DECISION = b'{"value":"192.0.2.%d","scenario":"s","origin":"crowdsec","type":"ban","scope":"Ip"}'
RULE = b"[0:0] -A INPUT -s 192.0.2.7/32 -j DROP\n"

CASES = {
    # auth log: one line of n bytes through framing + classify, and through both chunk scanners
    "authlog 1 MB sshd line": Case("authlog_lines", _repeat(STAMP + b"Invalid user ", b"a "), MB4, 5),
    "authlog 1 MB line of blanks": Case("authlog_lines", _repeat(STAMP, b" ", b"[preauth]"), MB4, 5),
    "authlog 1 MB line without a frame": Case("authlog_lines", _repeat(b"Nov 23 ", b":"), MB4, 5),
    "authlog fast paths, 1 MB line": Case(
        "authlog_fastpaths", _repeat(STAMP + b"Failed password for ", b"x ", b" from"), MB4, 10
    ),
    "authlog fast paths, 1 MB of lines": Case(
        "authlog_fastpaths", _repeat(b"", STAMP + b"Connection closed by 192.0.2.7 port 22\n"), MB4, 30
    ),
    "journal 1 MB message": Case(
        "journal_json", _repeat(b'{"__CURSOR":"c","MESSAGE":"', b"a", b'"}'), MB4, 2
    ),
    "journal deeply nested": Case("journal_json", _repeat(b"", b"["), MB4, 5),
    # tcp wrappers: one rule of 100,000 patterns, one 10 MB logical line, 100,000 lines
    "hosts.deny 100,000-pattern rule": Case(
        "tcpwrappers", _joined(b"sshd: ", _pattern, b" ", b"\n"), 25_000, 20
    ),
    "hosts.deny 10 MB logical line": Case(
        "tcpwrappers", _repeat(b"sshd: ", b"192.0.2.7 \\\n", b": deny\n"), 2_500_000, 20
    ),
    "hosts.deny 50,000 lines": Case(
        "tcpwrappers", _joined(b"sshd: ", _pattern, b"\nsshd: ", b"\n"), 25_000, 20
    ),
    # sshd
    "sshd_config 1 MB line": Case("sshd_config", _repeat(b"ListenAddress ", b'"a" '), MB4, 6),
    "sshd_config many lines": Case("sshd_config", _repeat(b"", b"MaxStartups 10:30:100\n"), MB4, 5),
    "sshd_config Include of itself": Case(
        "sshd_config", _repeat(b"Include /etc/ssh/sshd_config\n", b"#\n"), 1 << 16, 20
    ),
    "sshd -T 1 MB": Case("sshd_t", _repeat(b"port 22\nlistenaddress ", b"x", b"\n"), MB4, 2),
    "process title of blanks": Case("sshd_titles", _repeat(b"sshd: ", b" ", b"[listener]"), MB4, 6),
    "process title of digits": Case("sshd_titles", _repeat(b"[listener] ", b"1 of 1-"), MB4, 6),
    "/proc/net/tcp": Case("proc_net_tcp", _repeat(b"", TCP), MB4, 2),
    # peers' replies
    "fail2ban reply of many addresses": Case("fail2ban_reply", _pickle_list, 25_000, 5),
    "fail2ban reply of nested lists": Case(
        "fail2ban_reply", _repeat(b"\x80\x04(K\x00", b"]", b"\x86." + END), 1 << 16, 5
    ),
    "nft JSON deeply nested": Case("nft_json", _repeat(b"", b'{"nftables":'), MB4, 5),
    "nft JSON many sets": Case(
        "nft_json", _joined(b'{"nftables":[', lambda i: NFT_SET % i, b",", b"]}"), 3000, 5
    ),
    "crowdsec deeply nested": Case("crowdsec_api", _repeat(b"", b"["), MB4, 5),
    "crowdsec many decisions": Case(
        "crowdsec_api", _joined(b"[", lambda i: DECISION % (i % 250), b",", b"]"), 3000, 5
    ),
    "ipset save": Case("ipset_save", _repeat(b"create s hash:ip\n", b"add s 192.0.2.7\n"), MB4, 5),
    "iptables-save": Case(
        "iptables_save", _repeat(b"*filter\n:INPUT ACCEPT [0:0]\n", RULE, b"COMMIT\n"), MB4, 5
    ),
    # the exporter's own files (block style: PyYAML's flow style is the open finding in test_fuzz_findings)
    "config long watchlist": Case(
        "config_file",
        _joined(b"watchlist:\n", lambda i: b"  - 198.51.100.%d" % (i % 250), b"\n", b"\n"),
        1 << 12,
        10,
    ),
    "web config deeply nested": Case("web_config", _repeat(b"basic_auth_users: ", b"{a: "), 1 << 10, 10),
}


@pytest.mark.parametrize("name", CASES)
def test_huge_input_takes_linear_bounded_time(name: str) -> None:
    case = CASES[name]
    small, large = best_growth(TARGETS[case.target], case.make, case.n)
    assert large < case.bound, f"{name}: {large:.3f} s for {4 * case.n}"
    assert ratio(small, large) < LINEAR, f"{name}: {small:.4f} s -> {large:.4f} s for 4x the input"


def test_pickle_bomb_is_refused_before_it_is_built() -> None:
    """Each level a list of the level below twice, by memo: 2**60 elements described in ~500 bytes."""
    body = b"\x80\x04K\x00]\x94"  # PROTO 4, code 0, [] memoized as 0
    for level in range(60):
        body += b"(h%c" % level + b"h%c" % level + b"l\x94"  # MARK, GET level, GET level, LIST, MEMOIZE
    frame = body + b"\x86." + END
    assert seconds(lambda: TARGETS["fail2ban_reply"](frame)) < 1.0
