"""The edge package's files import only downward, and never the desktop stages."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import deepfer.edge

EDGE = Path(deepfer.edge.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[2]

#: Layers, lowest first: a module may import its own layer and those below, never above.
LAYERS = [
    {"errors", "labels", "paths", "reminder"},
    {"preprocess", "boxes", "netaddr", "messages", "stats", "progress", "recording"},
    {"config"},
    {"capture"},
    {"model", "detectors", "tracker", "near_framing", "camera_turn", "drawing"},
    {"pipeline"},
    {"outputs", "timeline", "annotated_video", "recognizer"},
    {"daemon", "detect_files", "demo"},
    {"commands"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def edge_modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(EDGE).with_suffix("").parts): p
        for p in EDGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != EDGE
    }


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_every_edge_module_has_a_layer():
    tops = {name.split(".")[0] for name in edge_modules()}
    assert tops == set(LAYER), tops ^ set(LAYER)


def test_edge_imports_only_downward_and_no_desktop_stage():
    wrong = []
    for name, path in edge_modules().items():
        own = LAYER[name.split(".")[0]]
        for module in imports(path):
            if module.split(".")[0] in ("tensorflow", "keras") or module.startswith(
                ("deepfer.train", "deepfer.convert", "deepfer.data", "deepfer.evaluate")
            ):
                wrong.append(f"{name} imports {module}")
            if module.startswith("deepfer.edge."):
                target = module.split(".")[2]
                if LAYER[target] > own:
                    wrong.append(f"{name} (layer {own}) imports {module} (layer {LAYER[target]})")
    assert not wrong, "\n".join(wrong)


def test_tracker_and_pipeline_do_not_reach_into_detectors_or_cameras():
    assert not any(m.startswith("deepfer.edge.detectors") for m in imports(EDGE / "tracker.py"))
    pipeline = imports(EDGE / "pipeline.py")
    assert "deepfer.edge.capture.sources" not in pipeline and "cv2" not in pipeline


#: The distribution each third-party module an edge file imports comes from; PIL comes with
#: either extra that needs it (gradio and matplotlib both require Pillow).
PROVIDERS = {
    "numpy": {"numpy"},
    "cv2": {"opencv-python-headless"},
    "paho": {"paho-mqtt"},
    "tomli": {"tomli"},
    "picamera2": {"picamera2"},
    "matplotlib": {"matplotlib"},
    "PIL": {"pillow", "gradio", "matplotlib"},
}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """The base install's distributions, and each extra's (from pyproject.toml)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the base install's tomli
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return _requirement_names(project["dependencies"]), {
        name: _requirement_names(reqs) for name, reqs in extras.items()
    }


def _third_party_imports(path: Path) -> dict[str, bool]:
    """Top-level names of the non-stdlib modules a file imports -> whether any such import
    runs when the file is imported (at module level, not inside a function)."""
    tree = ast.parse(path.read_text())
    lazy = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "deepfer":
                continue
            found[top] = found.get(top, False) or id(node) not in lazy
    return found


def test_edge_imports_only_what_its_install_declares():
    """What an edge-only install (``.[edge]``, as on a Pi) lacks is found here, from the
    source, without installing anything: a module-level import must come from the base
    install or the edge extra; one inside a function (an optional feature) from some extra.
    (TensorFlow and the desktop stages: the test above.)"""
    base, extras = _declared()
    light = base | extras["edge"]
    anywhere = set().union(base, *extras.values())
    wrong = []
    for name, path in sorted(edge_modules().items()):
        for module, eager in sorted(_third_party_imports(path).items()):
            providers = PROVIDERS.get(module)
            if providers is None:
                wrong.append(f"{name} imports {module}: add its distribution to PROVIDERS")
            elif eager and not providers & light:
                wrong.append(f"{name} imports {module} at import time; [edge] lacks it")
            elif not providers & anywhere:
                wrong.append(f"{name} imports {module}; no extra in pyproject.toml declares it")
    assert not wrong, "\n".join(wrong)
