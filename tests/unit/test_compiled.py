"""The modules setup.py compiles with mypyc: the tests exercise the build the tree would give.

A compiled module shadows its .py, so after an edit the old build would be what runs (and what the tests
pass on) until `make dev` rebuilds it; and under `.ci/run` the build must have compiled them, or the
fast path the benchmarks measure would go untested.
"""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parent.parent.parent


def _compiled_modules() -> list[str]:
    tree = ast.parse(ROOT.joinpath("setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED_MODULES":
            paths: list[str] = ast.literal_eval(node.value)
            return [path.removesuffix(".py").replace("/", ".") for path in paths]
    raise AssertionError("setup.py has no COMPILED_MODULES")


@pytest.mark.parametrize("name", _compiled_modules())
def test_compiled_module_is_current(name: str) -> None:
    module = importlib.import_module(name)
    built = Path(str(module.__file__))
    source = ROOT.joinpath(*name.split(".")).with_suffix(".py")
    if built.suffix == ".py":
        assert os.environ.get("REQUIRE_INTEGRATION") != "1", f"{name} is not compiled: see setup.py"
        return
    assert built.stat().st_mtime >= source.stat().st_mtime, f"{built.name} is older than its source: make dev"
