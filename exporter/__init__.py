"""ssh-access-exporter: who is kept out of sshd, by which layer, and is sshd near its limits."""

from importlib import metadata

try:
    __version__ = metadata.version("ssh-access-exporter")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
