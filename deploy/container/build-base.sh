#!/usr/bin/env bash
# Builds a Debian base image from a package mirror with mmdebstrap and imports it into podman, for
# machines that reach a Debian mirror but no container registry (as root):
#   deploy/container/build-base.sh localhost/debian:bookworm [SOURCES]
#   podman build -f deploy/container/Containerfile --build-arg BASE=localhost/debian:bookworm .
# SOURCES: the apt sources to build from (a one-line or deb822 .sources file, as mmdebstrap takes it);
# default: this machine's own Debian sources, so the base uses the mirror apt here already uses.
# The image is minbase (essential packages and apt), like debian:bookworm-slim.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 IMAGE[:TAG] [SOURCES]" >&2
    exit 2
fi
image=$1
sources=${2:-}
if [ -z "$sources" ]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$candidate" ]; then
            sources=$candidate
            break
        fi
    done
fi
mirror=()
[ -n "$sources" ] && mirror=("$sources")
suite=${SUITE:-bookworm}
# mmdebstrap writes a tarball to stdout; podman import makes it a one-layer image. Like the official
# slim images, dpkg leaves out documentation, manual pages and translations (copyright files stay), in
# the base and in whatever a build installs on it later.
mmdebstrap --quiet --variant=minbase --format=tar \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
    "$suite" - "${mirror[@]}" |
    podman import --change 'CMD ["/bin/bash"]' --message "mmdebstrap --variant=minbase $suite" - "$image"
