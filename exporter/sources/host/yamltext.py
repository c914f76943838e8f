"""YAML text to Python data, for the config files and the tools' files we read."""

from __future__ import annotations

from typing import Any


class YAMLSyntaxError(ValueError):
    """Text that is not YAML (PyYAML's message)."""


def parse_yaml(text: str) -> Any:
    """yaml.safe_load, with PyYAML imported on first use: most hosts run without a config file, and
    the module costs about 1.8 MB of resident memory."""
    import yaml  # noqa: PLC0415

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(str(exc)) from exc
