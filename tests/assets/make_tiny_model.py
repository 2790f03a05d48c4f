"""Makes the tiny test model tests/edge uses: ``tiny_int8.tflite`` (full int8) and
``tiny_float32.tflite``, each with its JSON sidecar, in this folder.

A deepfer-edge CNN trained 12 epochs on learnable stand-in faces (tests/synthetic.py) and
converted by ``deepfer convert``'s API, exactly as the ``tiny_tflite_model`` fixture of
tests/conftest.py does; committed so that the edge tests run with no TensorFlow installed.
Needs the train extra; run from the repository root:

    python tests/assets/make_tiny_model.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/synthetic.py

from synthetic import convert_tiny_model, make_tiny_fer, train_tiny_keras_model  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fer = make_tiny_fer(work / "tiny_fer")
        keras_model = train_tiny_keras_model(fer, work / "tiny.keras")
        trained_on = "synthetic test faces (tests/synthetic.py)"
        result = convert_tiny_model(keras_model, fer, work / "tiny", trained_on)
        for fmt in ("int8", "float32"):
            model = result.path(fmt)
            shutil.copy(model, HERE / model.name)
            side = json.loads(model.with_suffix(".json").read_text())
            side["source_model"]["path"] = "tiny.keras (made and dropped by this script)"
            (HERE / model.name).with_suffix(".json").write_text(json.dumps(side, indent=2) + "\n")
            print(f"wrote {HERE / model.name} ({model.stat().st_size} bytes) and its sidecar")
    return 0


if __name__ == "__main__":
    sys.exit(main())
