"""Benchmarks: `python -m benchmarks` runs them side by side with the peer tools."""
