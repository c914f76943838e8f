"""Metric families rendered by more than one collector (not collectors themselves: the registry skips
this package)."""
