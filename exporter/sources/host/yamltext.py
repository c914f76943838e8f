"""YAML text to Python data, for the config files and the tools' files we read."""

from __future__ import annotations

from typing import Any


class YAMLSyntaxError(ValueError):
    """Text that is not YAML (PyYAML's message)."""


def parse_yaml(text: str, *, refuse_repeated_keys: bool = False) -> Any:
    """yaml.safe_load, with PyYAML imported on first use: most hosts run without a config file, and
    the module costs about 1.8 MB of resident memory. With `refuse_repeated_keys`, a key given twice
    in one mapping raises RepeatedKeyError (see repeated_key), checked on the same parse."""
    import yaml  # noqa: PLC0415

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if refuse_repeated_keys:
            repeated = repeated_key(node)
            if repeated is not None:
                raise RepeatedKeyError(repeated)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(str(exc)) from exc
    finally:
        loader.dispose()


class RepeatedKeyError(ValueError):
    """A key given twice in one mapping; `path` names it (dotted)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: given twice")
        self.path = path


def repeated_key(root: Any) -> str | None:
    """The first key given twice in one mapping of a composed YAML document, as a dotted path, or None.

    A YAML load keeps the last value, so a second `cert_file`, user or `watchlist` below the first would
    silently win; Go's strict YAML (exporter-toolkit's yaml.UnmarshalStrict) refuses such a file, and
    the config loaders refuse it too. Keys compare as text, as Go's map[string] keys do (`1000` and
    `'1000'` are one user).
    """
    import yaml  # noqa: PLC0415 (as parse_yaml)

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
