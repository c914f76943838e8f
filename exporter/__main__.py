"""`python -m exporter` runs the same CLI as the `ssh-access-exporter` command.

`replay` goes straight to its module: it needs none of the server's modules (collectors, web, TLS),
and importing them all would be a measurable share of replaying a log (docs/benchmarks.md).
"""

import sys

if sys.argv[1:2] == ["replay"]:
    from exporter.replay import main as replay

    raise SystemExit(replay(sys.argv[2:]))

from exporter.cli import main

raise SystemExit(main())
