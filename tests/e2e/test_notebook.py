"""notebooks/walkthrough.ipynb: committed without outputs, and executed top to bottom (nbclient)
on a small subset of the real FER2013 (DEEPFER_DATA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"


def test_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.slow
@pytest.mark.real_data
def test_walkthrough_executes_on_a_subset(data_dir, tmp_path, monkeypatch):
    for module in ("nbclient", "nbformat", "ipykernel", "keras", "matplotlib"):
        pytest.importorskip(module)
    import nbformat
    from nbclient import NotebookClient

    if not (data_dir / "fer2013").is_dir() or not (data_dir / "media" / "woman2.mp4").is_file():
        pytest.skip(f"{data_dir} lacks fer2013/ or media/woman2.mp4")
    monkeypatch.setenv("DEEPFER_DATA", str(data_dir))
    monkeypatch.setenv("DEEPFER_NB_SIZE", "700")
    monkeypatch.setenv("DEEPFER_NB_EPOCHS", "2")
    monkeypatch.setenv("DEEPFER_NB_EVERY", "3")
    monkeypatch.setenv("DEEPFER_NB_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    images = sum(
        "image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
        for o in c.get("outputs", [])
    )  # fmt: skip
    assert "700 training faces" in text
    assert "macro-F1" in text  # the per-class table
    assert "walkthrough_int8.tflite" in text and "walkthrough_float32.tflite" in text
    assert "model: deepfer_int8" in text and "track #1:" in text
    assert images >= 7  # balance, samples, history, confusion, ROC, photo, timeline, P(happy)
    out = tmp_path / "out"
    for name in ("confusion_matrix.png", "roc_curves.png", "timeline.png", "walkthrough_int8.json"):
        assert (out / name).is_file(), name
