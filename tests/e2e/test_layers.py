"""Packages import only downward: edge <- data <- evaluate <- train, convert <- the command.

Read from the source (every ``import deepfer.X`` / ``from deepfer.X import``, at the top or
inside a function), so a lazy import that breaks the order is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Package -> the deepfer packages it may import (its own included).
ALLOWED = {
    "edge": {"edge", "models"},
    "data": {"edge", "data"},
    "evaluate": {"edge", "data", "evaluate"},
    "train": {"edge", "data", "evaluate", "train"},
    "convert": {"edge", "data", "evaluate", "convert"},
}
#: The one sideways import: convert reads what training recorded for the sidecar (a run
#: folder, or the record beside an ensemble), in the two modules that own those formats.
EXCEPTIONS = {("convert", "deepfer.train.run_folder"), ("convert", "deepfer.train.ensemble_record")}


def deepfer_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("deepfer.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deepfer."):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_only_downward(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(deepfer_imports(path)):
            target = name.split(".")[1]
            if target in ALLOWED[package]:
                continue
            if any(p == package and (name == e or name.startswith(e + ".")) for p, e in EXCEPTIONS):
                continue
            wrong.append(f"{path.relative_to(ROOT)}: {name}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", ["data", "evaluate", "train", "convert"])
def test_no_desktop_module_is_over_400_lines(package):
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in sorted((ROOT / package).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, long
