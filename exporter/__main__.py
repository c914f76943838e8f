"""The `ssh-access-exporter` command (pyproject's entry point) and `python -m exporter`: the one table of
subcommands. Without one, the command serves metrics (exporter.cli).

Each view is imported only when asked for: `replay` needs none of the server's modules (collectors,
web, TLS), and importing them all would be a measurable share of replaying a log (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def _replay(argv: Sequence[str]) -> int:
    from exporter.replay import main  # noqa: PLC0415 (the point: nothing else imported)

    return main(argv)


def _diagnose(argv: Sequence[str]) -> int:
    from exporter.diagnose import main  # noqa: PLC0415 (as above)

    return main(argv)


def _check(argv: Sequence[str]) -> int:
    from exporter.check import main  # noqa: PLC0415 (as above)

    return main(argv)


def _textfile(argv: Sequence[str]) -> int:
    from exporter.textfile import main  # noqa: PLC0415 (as above)

    return main(argv)


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "replay": _replay,
    "diagnose": _diagnose,
    "check": _check,
    "textfile": _textfile,
}


def main(argv: Sequence[str] | None = None) -> int:
    """`argv` without the program name (default: the process's)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return SUBCOMMANDS[args[0]](args[1:])
    from exporter.cli import serve  # noqa: PLC0415 (as above)

    return serve(args, subcommands=tuple(SUBCOMMANDS))


if __name__ == "__main__":
    raise SystemExit(main())
