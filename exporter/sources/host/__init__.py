"""Plumbing every reader shares: host paths under --path.rootfs/--path.procfs, bounded reads of host
files and /proc, host tools run with a deadline, peers' replies bounded, one run in flight per source."""
