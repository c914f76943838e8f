"""Collectors: turn the typed data of exporter.sources into metric families."""
