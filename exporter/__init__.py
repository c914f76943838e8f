"""ssh-access-exporter: who is kept out of sshd, by which layer, and is sshd near its limits."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed metadata only when asked for: importlib.metadata costs a
    noticeable share of the start-up of short runs (`replay`)."""
    if name != "__version__":
        raise AttributeError(f"module 'exporter' has no attribute {name!r}")
    from importlib import metadata  # noqa: PLC0415 (lazy on purpose)

    try:
        return metadata.version("ssh-access-exporter")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"
