"""Hostile and busy HTTP clients, run in a process of their own so their CPU and descriptors are not the
measuring process's: `python -m tests.integration.hostile MODE HOST PORT ...`, one JSON line on stdout.

Modes:
- `hold IDLE TRICKLE SECONDS [--reconnect]`: IDLE sockets that connect and send nothing, TRICKLE sockets
  that send one byte a second of a request head that never ends. Prints `ready` once all are connected,
  then a JSON summary after SECONDS (or when stdin closes): when the server closed each one, how many
  connection attempts failed. With --reconnect a closed socket is opened again, keeping the load up.
- `scrape CONCURRENCY SECONDS [AUTHORIZATION] [--from=ADDRESS]`: CONCURRENCY keep-alive clients asking
  GET /metrics in a loop for SECONDS, from ADDRESS if given (127.0.0.2: another host, as the server sees
  it); the JSON holds every request's latency and every failure.

Used by benchmarks/bench_http_clients.py and tests/integration/test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import threading
import time
from dataclasses import dataclass, field

# What a trickling client sends, a byte a second: a head that never ends (no blank line ever comes).
TRICKLE_HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100_000


def raise_fd_limit(needed: int) -> int:
    """Raises this process's soft RLIMIT_NOFILE to `needed` (up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


@dataclass
class HoldStats:
    opened: int = 0
    connect_failures: list[str] = field(default_factory=list)
    # (kind, seconds from the start of the run when it opened, seconds it lived until the server closed it)
    closed: list[tuple[str, float, float]] = field(default_factory=list)
    open_now: int = 0
    stopping: bool = False  # checked as well as cancellation: wait_for can swallow a cancel (bpo-42130)


async def _connect(
    host: str, port: int, stats: HoldStats
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        pair = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
    except (OSError, TimeoutError) as exc:
        stats.connect_failures.append(type(exc).__name__)
        return None
    stats.opened += 1
    return pair


async def _held(
    kind: str, host: str, port: int, stats: HoldStats, start: float, reconnect: bool, ready: asyncio.Event
) -> None:
    first = True
    while not stats.stopping:
        pair = await _connect(host, port, stats)
        if first:
            first = False
            ready.set()
        if pair is not None and stats.stopping:
            pair[1].close()
            return
        if pair is None:
            await asyncio.sleep(1)
            if not reconnect:
                return
            continue
        reader, writer = pair
        opened = time.monotonic()
        stats.open_now += 1
        try:
            if kind == "idle":
                await reader.read(65536)  # b"" or a reset: the server closed it
            else:
                for offset in range(len(TRICKLE_HEAD)):
                    writer.write(TRICKLE_HEAD[offset : offset + 1])
                    await writer.drain()
                    read = asyncio.ensure_future(reader.read(65536))
                    done, _ = await asyncio.wait({read}, timeout=1)
                    if done:
                        with contextlib.suppress(OSError):
                            read.result()
                        break  # the server answered, closed or reset it
                    read.cancel()
        except OSError:
            pass
        stats.open_now -= 1
        stats.closed.append((kind, round(opened - start, 3), round(time.monotonic() - opened, 3)))
        writer.close()
        if not reconnect:
            return


def _stdin_closed() -> asyncio.Future[None]:
    """Set when stdin closes; read by a daemon thread, so that a run ended by its time need not wait."""
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()

    def done() -> None:
        if not closed.done():
            closed.set_result(None)

    def watch() -> None:
        sys.stdin.read()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run ended by its time
            loop.call_soon_threadsafe(done)

    threading.Thread(target=watch, daemon=True).start()
    return closed


async def hold(host: str, port: int, idle: int, trickle: int, seconds: float, reconnect: bool) -> HoldStats:
    raise_fd_limit(idle + trickle + 100)
    stats = HoldStats()
    start = time.monotonic()
    tasks = []
    kinds = ["idle"] * idle + ["trickle"] * trickle
    for batch in range(0, len(kinds), 100):  # 100 at a time: no SYN flood of our own
        events = []
        for kind in kinds[batch : batch + 100]:
            ready = asyncio.Event()
            events.append(ready)
            tasks.append(asyncio.ensure_future(_held(kind, host, port, stats, start, reconnect, ready)))
        await asyncio.gather(*(event.wait() for event in events))
    print("ready", flush=True)
    await asyncio.wait({_stdin_closed()}, timeout=seconds)
    stats.stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)
    return stats


def hold_summary(stats: HoldStats) -> dict[str, object]:
    summary: dict[str, object] = {
        "opened": stats.opened,
        "connect_failures": len(stats.connect_failures),
        "connect_failure_kinds": sorted(set(stats.connect_failures)),
        "open_at_end": stats.open_now,
    }
    for kind in ("idle", "trickle"):
        lived = sorted(life for k, _, life in stats.closed if k == kind)
        summary[kind] = {
            "closed_by_server": len(lived),
            "lifetime_min_s": lived[0] if lived else None,
            "lifetime_median_s": lived[len(lived) // 2] if lived else None,
            "lifetime_max_s": lived[-1] if lived else None,
        }
    return summary


async def _body(reader: asyncio.StreamReader, fields: dict[bytes, bytes]) -> None:
    """Reads a response body by its Content-Length or its chunks (Go's servers stream /metrics chunked)."""
    if fields.get(b"transfer-encoding") != b"chunked":
        await reader.readexactly(int(fields.get(b"content-length", b"0")))
        return
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the blank line
        pass


async def _scrape_client(
    host: str,
    port: int,
    deadline: float,
    authorization: str,
    latencies: list[float],
    failures: list[str],
    source: str | None = None,
) -> None:
    request = f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if authorization:
        request += f"Authorization: {authorization}\r\n"
    raw = (request + "\r\n").encode()
    pair: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            if pair is None:
                local = (source, 0) if source else None
                pair = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=local), 30)
            reader, writer = pair
            writer.write(raw)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = head.split(b" ", 2)[1]
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            close = b"close" in fields.get(b"connection", b"")
            await asyncio.wait_for(_body(reader, fields), 30)
            if status != b"200":
                failures.append(status.decode())
            else:
                latencies.append(time.monotonic() - started)
            if close:
                writer.close()
                pair = None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            failures.append(type(exc).__name__)
            if pair is not None:
                pair[1].close()
            pair = None
    if pair is not None:
        pair[1].close()


async def scrape(
    host: str, port: int, concurrency: int, seconds: float, authorization: str, source: str | None = None
) -> dict[str, object]:
    raise_fd_limit(concurrency + 100)
    latencies: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _scrape_client(host, port, deadline, authorization, latencies, failures, source)
            for _ in range(concurrency)
        )
    )
    return {"seconds": time.monotonic() - started, "latencies": latencies, "failures": failures}


def main(args: list[str]) -> None:
    argv = [arg for arg in args if not arg.startswith("--")]
    source = next((arg.partition("=")[2] for arg in args if arg.startswith("--from=")), None)
    mode, host, port = argv[0], argv[1], int(argv[2])
    if mode == "hold":
        stats = asyncio.run(
            hold(host, port, int(argv[3]), int(argv[4]), float(argv[5]), "--reconnect" in args)
        )
        print(json.dumps(hold_summary(stats)), flush=True)
    elif mode == "scrape":
        authorization = argv[5] if len(argv) > 5 else ""
        result = asyncio.run(scrape(host, port, int(argv[3]), float(argv[4]), authorization, source))
        print(json.dumps(result), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
