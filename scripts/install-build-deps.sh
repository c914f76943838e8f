#!/usr/bin/env bash
# The compiled auth-log hot path (setup.py, mypyc) needs a C compiler and Python's headers. As root on
# Debian this installs them when missing; anywhere else, or if apt fails, the install goes on and keeps
# those modules as plain Python (slower, same results).
set -uo pipefail
python=${1:-python3}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if command -v gcc >/dev/null && [ -e "$include/Python.h" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-build-deps: no gcc or Python.h: the auth-log hot path stays pure Python" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends gcc python3-dev; }; then
    echo "install-build-deps: apt failed: the auth-log hot path stays pure Python" >&2
fi
exit 0
