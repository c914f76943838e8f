"""The `ssh-access-exporter` command (pyproject's entry point) and `python -m exporter`.

`replay` goes straight to its module: it needs none of the server's modules (collectors, web, TLS),
and importing them all would be a measurable share of replaying a log (docs/benchmarks.md). Everything
else is exporter.cli's.
"""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["replay"]:
        from exporter.replay import main as replay  # noqa: PLC0415 (the point: nothing else imported)

        return replay(sys.argv[2:])
    from exporter.cli import main as cli  # noqa: PLC0415 (as above)

    return cli()


if __name__ == "__main__":
    raise SystemExit(main())
