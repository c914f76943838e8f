"""Build hook (the rest is pyproject.toml): compile the auth-log hot path with mypyc where it can.

Why: replaying or tailing a busy auth log is the one place where CPython's per-line cost decides the
outcome (docs/benchmarks.md: about 2x faster end to end). mypyc compiles these typed modules to C as
they are; nothing else changes. Without a C compiler or Python's headers (a bare `make run` machine)
the build goes on with the same modules as plain Python, and SSH_ACCESS_EXPORTER_PURE_PYTHON=1 asks
for that. `python -c "import exporter.sources.authlog.fast.linescan as m; print(m.COMPILED)"` tells which.
rules goes with linescan: the rules every path applies to a recognised line, which linescan calls per
line (compiled together, a call between them is a C call; into plain Python it would cost more).
"""

from __future__ import annotations

import contextlib
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILED_MODULES = [
    "exporter/sources/authlog/fast/linescan.py",
    "exporter/sources/authlog/rules.py",
    "exporter/sources/authlog/stats.py",
    "exporter/sources/authlog/topk.py",
]


class OptionalBuildExt(build_ext):
    """build_ext that warns and leaves the pure-Python modules in place when compiling fails.

    mypyc's per-module extensions all import one shared library: a partial build would make the
    modules unimportable, so after any failure every extension built is removed again.
    """

    def run(self) -> None:
        self._failed = False
        try:
            super().run()
        except Exception as error:  # any compiler or toolchain failure: fall back
            _fallback(error)
            self._failed = True
        if self._failed:
            for path in self.get_outputs():
                with contextlib.suppress(OSError):
                    os.remove(path)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # as above
            _fallback(error)
            self._failed = True


def _fallback(error: BaseException) -> None:
    print(f"ssh-access-exporter: not compiling the auth-log hot path ({error}); pure Python", file=sys.stderr)


def _extensions() -> list[Extension]:
    if os.environ.get("SSH_ACCESS_EXPORTER_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 (a build requirement, absent when installed)

        return list(mypycify(COMPILED_MODULES, opt_level="3"))
    except (Exception, SystemExit) as error:  # mypyc missing, or the modules did not type-check (mypyc exits)
        _fallback(error)
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
