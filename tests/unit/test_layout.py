"""The package's layering, read from the source with `ast`: no import cycle, and sources that know no flag.

A cycle between two modules (cli and diagnose importing each other, each inside a function to dodge
the import-time error) means neither can be read or tested alone, so every import counts: at module
level, inside functions, relative ones, and `from exporter.x import y` where y is a submodule. Imports
through importlib (the registry loading the collectors) are not statements and are not seen.

exporter/sources/ is the model of the host: the server and the CLI views read it with the same options,
which exporter.options builds from the flags. A source that names a flag, parses arguments or renders
metrics would tie the model to one view.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "exporter"

# A string that is a flag's name, with or without its dashes (`"collector.fail2ban.db"`,
# `"--path.rootfs"`), or starts one in an f-string (`f"collector.{name}"`). Prose that mentions a flag
# (an error message saying "not under --path.rootfs") is no flag name.
FLAG_NAME = re.compile(r"-{0,2}(?:no-)?(?:collector|path|config|log|web|scrape)\.[\w.-]*")
# What renders, parses arguments or serves: the views of the model, never part of it.
FORBIDDEN_IN_SOURCES = (
    "prometheus_client",
    "argparse",
    "exporter.cli",
    "exporter.collectors",
    "exporter.diagnose",
    "exporter.options",
    "exporter.registry",
    "exporter.replay",
    "exporter.scrape",
    "exporter.web",
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its __init__)."""
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def imported(source: str, module: str, is_package: bool, known: Mapping[str, object]) -> Iterator[str]:
    """The modules of `known` that `source` (the text of `module`) imports, wherever the statement is."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:
                    yield submodule
                elif target in known:
                    yield target


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    found = modules(root, package)
    return {
        name: set(imported(path.read_text(), name, path.name == "__init__.py", found)) - {name}
        for name, path in found.items()
    }


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as the modules along it, first repeated at the end; None when the graph has none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def flag_names(source: str) -> list[str]:
    """The strings of `source` (not its docstrings) that are, or begin, a flag's name."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and FLAG_NAME.fullmatch(node.value)
    ]


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_SOURCES)


def forbidden_imports(source: str) -> list[str]:
    """The FORBIDDEN_IN_SOURCES modules `source` imports (`from exporter import cli` too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if _forbidden(alias.name)}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if _forbidden(node.module):
                found.add(node.module)
            else:
                found |= {
                    f"{node.module}.{a.name}" for a in node.names if _forbidden(f"{node.module}.{a.name}")
                }
    return sorted(found)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_graph_sees_every_form_of_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\nfrom pkg.sub import c\nfrom . import d\n",
            "pkg/b.py": "def f() -> None:\n    from .sub.c import X\n",
            "pkg/d.py": "from pkg.sub import NAME\nimport os\n",
            "pkg/sub/__init__.py": "from .c import X as NAME\n",
            "pkg/sub/c.py": "from .. import d\n",
        },
    )
    assert import_graph(root, "pkg") == {
        "pkg": set(),
        "pkg.a": {"pkg.b", "pkg.sub.c", "pkg.d"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.d": {"pkg.sub"},
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.d"},
    }


def test_a_cycle_is_named(tmp_path: Path) -> None:
    """The cycle this test was written for: cli imported diagnose, diagnose imported cli in a function."""
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/cli.py": "from pkg import diagnose\n",
            "pkg/diagnose.py": "def parser() -> None:\n    from pkg.cli import add_host_flags\n",
            "pkg/replay.py": "",
        },
    )
    assert find_cycle(import_graph(root, "pkg")) == ["pkg.cli", "pkg.diagnose", "pkg.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph()
    assert "exporter.options" in graph and "exporter.cli" in graph["exporter.__main__"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_source_checks_see_flags_and_view_imports() -> None:
    source = (
        '"""Reads under --path.rootfs."""\n'
        "import argparse\n"
        "from prometheus_client.core import GaugeMetricFamily\n"
        "from exporter import cli\n"
        "def f(args, name):\n"
        '    """collector.x"""\n'
        "    from exporter.collectors.fail2ban import make_collector\n"
        '    raise OSError("not under --path.rootfs")\n'
        '    found = args["collector.fail2ban.db"], args.get(f"collector.{name}")\n'
        '    return found, "--path.procfs", "path.rootfs"\n'
    )
    assert sorted(flag_names(source)) == [
        "--path.procfs",
        "collector.",
        "collector.fail2ban.db",
        "path.rootfs",
    ]
    assert forbidden_imports(source) == [
        "argparse",
        "exporter.cli",
        "exporter.collectors.fail2ban",
        "prometheus_client.core",
    ]


def test_sources_know_no_flag_and_import_no_view() -> None:
    found = {}
    for name, path in modules().items():
        if name.startswith("exporter.sources."):
            source = path.read_text()
            problems = flag_names(source) + forbidden_imports(source)
            if problems:
                found[name] = problems
    assert found == {}


def test_no_test_module_imports_another() -> None:
    """Builders several test files use live in helpers (tests/builders.py, tests/integration/services.py,
    ...): a test module imported by another reads like a library, and pytest collects it as a side effect."""
    tests = {
        name: path
        for name, path in modules(ROOT, "tests").items()
        if name.rsplit(".", 1)[-1].startswith("test_")
    }
    found = {
        (name, target)
        for name, path in tests.items()
        for target in imported(path.read_text(), name, False, tests)
    }
    assert sorted(found) == [], "move what they share to tests/builders.py or another helper"
