"""The edge package's files import only downward, and never the desktop stages."""

from __future__ import annotations

import ast
from pathlib import Path

import deepfer.edge

EDGE = Path(deepfer.edge.__file__).resolve().parent

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
