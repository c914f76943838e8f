"""A realistic auth log for benchmarks: `python -m benchmarks.authlog_gen OUT [--lines N] [--addresses N]`.

Connections come as the groups of lines sshd writes for them (same pid, same address): invalid-user
scans with their PAM lines, root brute force up to max-auth-tries, logins, banner scanners, kex
mismatches, grace timeouts, TCP-wrapper refusals, MaxStartups episodes and penalties from the listener,
plus other daemons' lines. Exactly `addresses` distinct client addresses appear: the first
connections use each once, later ones draw heavy-tailed from them, as scanners do. Only documentation
ranges: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (768 addresses), then 2001:db8::/32.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

IPV4_PREFIXES = ("192.0.2.", "198.51.100.", "203.0.113.")
USERS = ("admin", "test", "oracle", "ubuntu", "user", "postgres", "git", "guest", "pi", "ftpuser")
HOST = "bastion"
PENALTY = "penalty: failed authentication"


def address(index: int) -> str:
    """The index-th documentation address: the 768 IPv4 ones first, then distinct 2001:db8:: ones."""
    if index < 768:
        return f"{IPV4_PREFIXES[index // 256]}{index % 256}"
    index -= 768
    return f"2001:db8:{index >> 16:x}:{index & 0xFFFF:x}::{1 + index % 7:x}"


Lines = list[str]


def invalid_user(a: str, port: int, rng: random.Random) -> Lines:
    user = rng.choice(USERS)
    return [
        f"Invalid user {user} from {a} port {port}",
        "pam_unix(sshd:auth): check pass; user unknown",
        f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}",
        f"Failed password for invalid user {user} from {a} port {port} ssh2",
        f"Received disconnect from {a} port {port}:11: Bye Bye [preauth]",
        f"Disconnected from invalid user {user} {a} port {port} [preauth]",
    ]


def root_brute_force(a: str, port: int, rng: random.Random) -> Lines:
    tries = [f"Failed password for root from {a} port {port} ssh2"] * rng.randint(2, 6)
    return [
        *tries,
        f"error: maximum authentication attempts exceeded for root from {a} port {port} ssh2 [preauth]",
        f"Disconnecting authenticating user root {a} port {port}: Too many authentication failures [preauth]",
        "pam_unix(sshd:auth): 5 more authentication failures; "
        f"logname= uid=0 euid=0 tty=ssh ruser= rhost={a}  user=root",
    ]


def login(a: str, port: int, rng: random.Random) -> Lines:
    return [
        f"Accepted publickey for deploy from {a} port {port} ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0",
        "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
        f"Received disconnect from {a} port {port}:11: disconnected by user",
        f"Disconnected from user deploy {a} port {port}",
        "pam_unix(sshd:session): session closed for user deploy",
    ]


def banner_scan(a: str, port: int, rng: random.Random) -> Lines:
    if rng.random() < 0.5:
        return ["error: kex_exchange_identification: read: Connection reset by peer"]
    return [f"banner exchange: Connection from {a} port {port}: invalid format"]


def negotiation(a: str, port: int, rng: random.Random) -> Lines:
    return [
        f"Unable to negotiate with {a} port {port}: no matching key exchange method found. "
        "Their offer: diffie-hellman-group1-sha1,diffie-hellman-group14-sha1 [preauth]"
    ]


def closed(a: str, port: int, rng: random.Random) -> Lines:
    return [f"Connection closed by {a} port {port} [preauth]"]


def timeout(a: str, port: int, rng: random.Random) -> Lines:
    return [f"fatal: Timeout before authentication for {a} port {port}"]


def wrapped(a: str, port: int, rng: random.Random) -> Lines:
    return [f"refused connect from {a} ({a})"]


def not_allowed(a: str, port: int, rng: random.Random) -> Lines:
    return [f"User backup from {a} not allowed because not listed in AllowUsers"]


SESSIONS: tuple[tuple[Callable[[str, int, random.Random], Lines], float], ...] = (
    (invalid_user, 0.34),
    (root_brute_force, 0.14),
    (login, 0.06),
    (banner_scan, 0.14),
    (negotiation, 0.08),
    (closed, 0.14),
    (timeout, 0.04),
    (wrapped, 0.03),
    (not_allowed, 0.03),
)


def listener_burst(rng: random.Random, pick: Callable[[], str]) -> Lines:
    """A MaxStartups episode (8.4-9.7 wording: only the first drop at INFO) or penalty lines."""
    sockets = f"from [{pick()}]:{rng.randint(1024, 65535)} on [198.51.100.200]:22"
    if rng.random() < 0.5:
        dropped = rng.randint(5, 60)
        return [
            "error: beginning MaxStartups throttling",
            f"drop connection #10 {sockets} past MaxStartups",
            f"error: in MaxStartups throttling for 00:05:00, {dropped // 2 + 1} connections dropped",
            f"exited MaxStartups throttling after 00:07:31, {dropped + 1} connections dropped",
        ]
    block = sockets.split("]", 1)[0].removeprefix("from [")
    return [
        f"srclimit_penalise: ipv4: new {block}/32 active penalty of 30 seconds for {PENALTY}",
        f"drop connection #0 {sockets} {PENALTY}",
        "PerSourcePenalties logging rate-limited: additional 4 connections dropped",
    ]


def other_daemons(rng: random.Random) -> tuple[str, str]:
    return rng.choice(
        (
            ("CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
            ("CRON", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
            ("systemd-logind", "New session 4711 of user deploy."),
            ("sudo", "pam_unix(sudo:session): session closed for user root"),
        )
    )


def generate(
    lines: int,
    addresses: int,
    seed: int = 1,
    start: float = 1795392000.0,
    on_fresh: Callable[[], None] | None = None,
) -> Iterator[str]:
    """`lines` traditional syslog lines (with newline) over about a day from `start` (local time).

    on_fresh is called each time an address appears for the first time.
    """
    rng = random.Random(seed)
    sessions, weights = zip(*SESSIONS, strict=True)
    fresh = iter(rng.sample(range(addresses), addresses))
    pid = 10_000
    written = 0
    clock = start
    step = 86400.0 / max(1, lines)

    def pick() -> str:
        index = next(fresh, None)
        if index is not None and on_fresh is not None:
            on_fresh()
        if index is None:  # everyone has appeared: heavy tail, a few addresses do most of the work
            index = min(addresses - 1, int(rng.paretovariate(1.1)) - 1)
        return address(index)

    while written < lines:
        roll = rng.random()
        if roll < 0.02:
            group = [("sshd", 900, line) for line in listener_burst(rng, pick)]
        elif roll < 0.08:
            pid += 1
            ident, message = other_daemons(rng)
            group = [(ident, pid, message)]
        else:
            pid += 1
            session = rng.choices(sessions, weights)[0]
            group = [("sshd", pid, line) for line in session(pick(), rng.randint(1024, 65535), rng)]
        for ident, line_pid, message in group:
            if written == lines:
                break
            stamp = time.strftime("%b %e %H:%M:%S", time.localtime(clock))
            yield f"{stamp} {HOST} {ident}[{line_pid}]: {message}\n"
            clock += step
            written += 1


def write_log(path: Path, lines: int, addresses: int, seed: int = 1) -> int:
    """Write the log; return how many distinct addresses it holds (`addresses` when lines suffice)."""
    distinct = 0

    def seen() -> None:
        nonlocal distinct
        distinct += 1

    with path.open("w", encoding="utf-8") as out:
        out.writelines(generate(lines, addresses, seed, on_fresh=seen))
    return distinct


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    distinct = write_log(args.out, args.lines, args.addresses, args.seed)
    print(f"{args.out}: {args.lines} lines, {distinct} distinct addresses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
