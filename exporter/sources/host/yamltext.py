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


def repeated_key(text: str) -> str | None:
    """The first key given twice in one mapping, as a dotted path, or None.

    A YAML load keeps the last value, so a second `cert_file`, user or `watchlist` below the first would
    silently win; Go's strict YAML (exporter-toolkit's yaml.UnmarshalStrict) refuses such a file, and
    the config loaders refuse it too. Keys compare as text, as Go's map[string] keys do (`1000` and
    `'1000'` are one user).
    """
    import yaml  # noqa: PLC0415 (as parse_yaml)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # parse_yaml says why
    pending: list[tuple[yaml.Node | None, str]] = [(root, "")]
    while pending:
        node, path = pending.pop(0)
        if isinstance(node, yaml.SequenceNode):
            pending.extend((item, path) for item in node.value)
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            dotted = f"{path}.{name}" if path else name
            if isinstance(key_node, yaml.ScalarNode) and name in seen:
                return dotted
            seen.add(name)
            pending.append((value_node, dotted))
    return None
