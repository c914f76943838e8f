"""Coverage-guided fuzzing of one parser with atheris: `python -m tests.fuzz.run TARGET CORPUS_DIR [SECONDS]`.

The harness for each parser is its entry in tests/fuzz/targets.py (TARGETS); this runs one of them under
libFuzzer. The corpus directory is seeded from the target's fixtures on first use and keeps what libFuzzer
finds, so a later run starts where this one stopped. A crash (an exception the parser's caller does not
catch, or the fast auth-log paths disagreeing) stops the run and leaves the input as
`crashes/TARGET-crash-*` beside the corpus directory; an input slower than
FUZZ_INPUT_TIMEOUT seconds (default 10) counts as a crash too.
Needs the `fuzz` extra (`pip install -e '.[fuzz]'`); `make fuzz` runs every target in turn.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["exporter"]):
    from tests.fuzz.targets import TARGETS, seed_inputs

USAGE = f"usage: python -m tests.fuzz.run TARGET CORPUS_DIR [SECONDS] | --list; targets: {', '.join(TARGETS)}"


def seed(name: str, corpus: Path) -> None:
    """Write the target's fixtures into an empty corpus directory, one file each, named by content."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for data in seed_inputs(name):
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main(argv: list[str]) -> None:
    if argv[1:] == ["--list"]:
        print(" ".join(TARGETS))
        return
    if len(argv) not in (3, 4) or argv[1] not in TARGETS:
        sys.exit(USAGE)
    name, corpus = argv[1], Path(argv[2])
    seconds = int(argv[3]) if len(argv) == 4 else int(os.environ.get("FUZZ_SECONDS", "60"))
    seed(name, corpus)
    timeout = os.environ.get("FUZZ_INPUT_TIMEOUT", "10")
    target = TARGETS[name]
    # -max_len: a few large inputs, while most stay small enough for many runs a second.
    crashes = corpus.parent / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    args = [argv[0], str(corpus), f"-max_total_time={seconds}", f"-timeout={timeout}", "-max_len=65536"]
    args.append(f"-artifact_prefix={crashes}/{name}-")
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
