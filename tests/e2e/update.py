"""`make e2e-update` (`python -m tests.e2e.update`): write tests/e2e/expected.prom from a golden scrape.

Run it when the exposition changes on purpose, and commit the file with the change; the diff is what
reviewers read. Needs root (the exporter runs in a network namespace of its own).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.e2e.golden import EXPECTED, normalise, scrape_fixture_host


def main() -> int:
    if os.geteuid() != 0:
        print("e2e-update needs root: the exporter runs in a network namespace of its own", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ssh-access-e2e-") as directory:
        EXPECTED.write_text(normalise(scrape_fixture_host(Path(directory))))
    print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
