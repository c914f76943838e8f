"""YAML text to Python data, for the config files and the tools' files we read."""

from __future__ import annotations

import collections
from typing import Any


class YAMLSyntaxError(ValueError):
    """Text that is not YAML (PyYAML's message)."""


# Flow collections (`[`, `{`) nested deeper than this are refused before PyYAML reads the text: its scanner
# checks every open level at each token (n levels cost n**2: 4,096 took seconds, and a config file may hold
# 16 MB) and its composer recurses once per level (a few thousand overflow the stack). No config nests
# more than a handful. Counted without regard to quoting: a bracket inside a quoted value can only make
# the count larger, and a real file stays far below it all the same.
MAX_FLOW_DEPTH = 100


def flow_depth(text: str) -> int:
    """The deepest run of open `[`/`{` in `text` (closers lower it, never below 0)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def parse_yaml(text: str, *, refuse_repeated_keys: bool = False) -> Any:
    """yaml.safe_load, with PyYAML imported on first use: most hosts run without a config file, and
    the module costs about 1.8 MB of resident memory. With `refuse_repeated_keys`, a key given twice
    in one mapping raises RepeatedKeyError (see repeated_key), checked on the same parse. Whatever the
    text, only YAMLSyntaxError or RepeatedKeyError leave: PyYAML's reader errors (a NUL), nesting past
    MAX_FLOW_DEPTH or past the stack."""
    import yaml  # noqa: PLC0415

    if flow_depth(text) > MAX_FLOW_DEPTH:
        raise YAMLSyntaxError(f"nested too deep (more than {MAX_FLOW_DEPTH} levels of [ or {{)")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader checks the characters already: inside the try
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
    except RecursionError:  # block nesting: the composer recurses once per level
        raise YAMLSyntaxError("nested too deep") from None
    finally:
        if loader is not None:
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

    pending: collections.deque[tuple[yaml.Node | None, str]] = collections.deque([(root, "")])
    visited: set[int] = set()  # an alias is the same node again: walk it once, not once per reference
    while pending:
        node, path = pending.popleft()
        if id(node) in visited:
            continue
        visited.add(id(node))
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
