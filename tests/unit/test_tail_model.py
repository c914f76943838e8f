"""FileTailer against random sequences of writes, rotations and polls: every line read once, in order.

The writer is a syslog-like process holding an O_APPEND descriptor that it reopens only when told,
so lines keep landing in a rotated or deleted file after the switch. A rotation is followed by a
poll (as the tailer polls every 250 ms, it sees each rotation; two rotations inside one poll
interval are a documented limit of tail -F too).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.authlog.tail import FileTailer

OPS = st.lists(
    st.sampled_from(
        [
            *("write", "write", "write_half", "poll", "reopen"),
            *(
                "rename",
                "copytruncate",
                "recreate",
                "rename_polled",
                "copytruncate_polled",
                "recreate_polled",
            ),
        ]
    ),
    max_size=40,
)


class Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.n = 0
        self.half: str | None = None
        self.lines: list[str] = []

    def write(self, count: int = 1) -> None:
        for _ in range(count):
            if self.half is not None:
                os.write(self.fd, (self.half + "\n").encode())
                self.half = None
                continue
            line = f"sshd[{self.n}]: Failed password for root from 192.0.2.{self.n % 250 + 1} port {self.n}"
            self.lines.append(line)
            self.n += 1
            os.write(self.fd, (line + "\n").encode())

    def write_half(self) -> None:
        if self.half is not None:
            return
        line = f"sshd[{self.n}]: Invalid user \u00e9ve from 2001:db8::{self.n:x} port {self.n}"
        self.lines.append(line)
        self.n += 1
        cut = len(line) // 2
        os.write(self.fd, line[:cut].encode())
        self.half = line[cut:]

    def finish_line(self) -> None:
        if self.half is not None:
            self.write(1)

    def reopen(self) -> None:
        self.finish_line()  # syslog writers never split a line across files
        if self.path.exists():
            os.close(self.fd)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def catch_up(self) -> None:
        """Reopen only if a rotation left the writer behind (a half line stays pending otherwise)."""
        if os.fstat(self.fd).st_ino != os.stat(self.path).st_ino:
            self.reopen()

    def close(self) -> None:
        os.close(self.fd)


def run(ops: list[str], root: Path) -> None:
    log = root / "auth.log"
    log.write_text("")
    tailer = FileTailer(log, rotated_grace_s=3600, max_line_bytes=4096)
    read: list[str] = tailer.poll()  # started before the writer: it starts at the (empty) end
    writer = Writer(log)
    rotations = 0
    for op in ops:
        if op == "write":
            writer.write(3)
        elif op == "write_half":
            writer.write_half()
        elif op == "poll":
            read += tailer.poll()
        elif op == "reopen":
            writer.reopen()
        else:
            writer.catch_up()  # the previous rotation is behind the writer before the next one
            if op.endswith("polled") or (op == "copytruncate" and tailer.position == 0):
                # a copytruncate of a file that was empty at the last poll is a documented limit
                read += tailer.poll()
            kind = op.removesuffix("_polled")
            rotations += 1
            if kind != "copytruncate":
                writer.finish_line()  # syslog writers never split a line across files
            if kind in ("rename", "rename_gap"):
                log.rename(root / f"auth.log.r{rotations}")
                if kind == "rename_gap":  # a poll sees the path missing before the new file is created
                    writer.write(2)
                    read += tailer.poll()
                log.write_text("")
            elif kind == "copytruncate":
                if (root / "auth.log.1").exists():
                    (root / "auth.log.1").rename(root / f"auth.log.c{rotations}")
                shutil.copyfile(log, root / "auth.log.1")
                os.truncate(log, 0)
            else:  # deleted and created again
                log.unlink()
                log.write_text("")
            read += tailer.poll()
    writer.reopen()
    writer.write(1)
    read += tailer.poll()
    read += tailer.poll()
    writer.close()
    tailer.close()
    assert read == writer.lines


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_random_rotations_lose_and_repeat_nothing(ops: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        run(ops, Path(d))
