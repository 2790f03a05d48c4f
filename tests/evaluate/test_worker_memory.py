"""The benchmark worker reports its own peak memory, not its parent's.

``ru_maxrss`` is inherited across fork and exec: a worker started by a parent holding
400 MB reported over 400 MB whatever the model. The worker reads VmHWM, which starts afresh
at exec. Runs the shipped int8 model on random faces (no TensorFlow, no data needed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[2] / "models" / "deepfer_int8.tflite"
BALLAST_MB = 400

PARENT = textwrap.dedent(
    f"""
    import json, sys
    from pathlib import Path

    import numpy as np

    from deepfer.edge.stats import peak_rss_mb
    from deepfer.evaluate.measure import run_worker

    ballast = np.ones({BALLAST_MB} * 2**20, np.uint8)  # written, so resident
    spec = json.loads(sys.argv[1])
    result = run_worker(spec, Path(sys.argv[2]), "m")
    print(json.dumps({{"parent_peak": peak_rss_mb(), "worker": result}}))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is Linux's")
def test_worker_peak_rss_is_not_the_parents(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", faces)
    spec = {
        "model": str(MODEL),
        "runtime": "auto",
        "faces": str(tmp_path / "faces.npy"),
        "threads": 1,
        "warmup": 1,
        "runs": 3,
        "batch_size": 0,
        "predict": False,
    }
    proc = subprocess.run(
        [sys.executable, "-c", PARENT, json.dumps(spec), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["parent_peak"] > BALLAST_MB  # the parent really held the ballast
    worker = out["worker"]
    assert not worker["tensorflow_imported"]
    # Python, numpy, OpenCV and a 1.8 MB model: about 60-120 MB, far below the parent's peak
    assert 10 < worker["peak_rss_mb"] < BALLAST_MB / 2, worker
    assert 0 <= worker["rss_over_baseline_mb"] < worker["peak_rss_mb"]
