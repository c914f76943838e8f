"""`python -m exporter` runs the same CLI as the `ssh-access-exporter` command."""

from exporter.cli import main

raise SystemExit(main())
