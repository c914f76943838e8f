#!/usr/bin/env bash
# make deb: build ssh-access-exporter_VERSION_ARCH.deb into OUTDIR (default dist/).
#
# Why a copy of the tree: dpkg-buildpackage writes into the source tree (debian/ssh-access-exporter/,
# build/, the compiled modules), and debian/changelog is written here from pyproject.toml, the one
# place the version lives, so it is never committed and cannot disagree. The copy holds the files git
# knows (committed or new, not ignored): no .venv, build/ or leftovers of an editable install.
# Build dependencies are debian/control's Build-Depends; as root on Debian they are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's tools and Python only: a python3 or pip earlier on PATH (pyenv, a venv) must not build it.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME
out=$(realpath -m "${1:-dist}")
python=/usr/bin/python3
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
# The changelog's date, and so the package, depends on the last commit, not on the clock.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}

work=$(mktemp -d "${TMPDIR:-/tmp}/ssh-access-exporter-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/ssh-access-exporter-$version"
mkdir -p "$src" "$out"
git ls-files -z --cached --others --exclude-standard \
    | tar --create --null --files-from=- --ignore-failed-read --file=- 2>/dev/null \
    | tar --extract --directory="$src"

cat >"$src/debian/changelog" <<CHANGELOG
ssh-access-exporter ($version) bookworm; urgency=medium

  * Version $version (pyproject.toml).

 -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")
CHANGELOG

cd "$src"
if ! dpkg-checkbuilddeps 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            build-essential dpkg-dev && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q "$src"
    else
        dpkg-checkbuilddeps  # says which are missing
    fi
fi
dpkg-buildpackage --build=binary --no-sign
deb="ssh-access-exporter_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb"
cp "$work/$deb" "$out/$deb"
echo "$out/$deb"
