#!/usr/bin/env bash
# Installs the Debian packages the test suite starts for real (sshd, rsyslog, journald, firewalls,
# fail2ban, sshguard, Prometheus tools, tcpdmatch). Needs root and apt; elsewhere it says so and stops.
set -euo pipefail
PACKAGES=(
    python3 python3-venv python3-dev gcc make
    openssh-server openssh-client sshpass
    iptables nftables ipset iproute2
    fail2ban sshguard tcpd crowdsec
    rsyslog logrotate systemd-journal-remote libsystemd-dev pkg-config
    prometheus prometheus-alertmanager prometheus-node-exporter
    procps openssl curl
    dh-virtualenv debhelper dpkg-dev lintian
    chromium chromium-driver
    podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns
)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-system-deps: not root on Debian; skipping (integration tests will skip or fail)" >&2
    exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
# Keep package postinst scripts from starting their daemons: tests start their own, on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi
# CrowdSec's postinst registers with its Central API unless these credentials exist: stay offline.
mkdir -p /etc/crowdsec
[ -e /etc/crowdsec/online_api_credentials.yaml ] || echo '# offline' >/etc/crowdsec/online_api_credentials.yaml
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
