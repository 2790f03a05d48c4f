"""Where int8 loses agreement with float: TFLite's QuantizationDebugger, layer by layer.

The shipped int8 graph agrees with its float graph on 98.6-98.8% of faces (issue #12 asks
for 99%), and calibration size is not the lever (benchmarks/results/j12-sgd/PROGRESS.md).
This converts the Keras model exactly as ``deepfer convert`` does (same balanced calibration
faces) with the debugger attached, runs it on held-out faces (the validation slice), and
ranks the quantised tensors by their error relative to their own quantisation step:

* ``rmse/scale``: root-mean-square difference between the int8 tensor (dequantised) and the
  float tensor computed from the same int8 input to that layer, in units of the tensor's
  scale; 0.29 (the RMS of uniform rounding, 1/sqrt(12)) is the floor, more means clipping
  or error carried in from the layer's own int8 arithmetic;
* ``max/scale``: the largest error in the same units (0.5 is rounding alone).

    python benchmarks/probe_quant_layers.py MODEL.keras --calibration-data $DEEPFER_DATA/fer2013 \\
        --faces /work/runs/val-slice-1337 --json benchmarks/results/j12-sgd/quant_layers.json

Needs the train extra (TensorFlow).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np
from results_file import write_json

from deepfer.data.sampling import load_source, representative_set
from deepfer.edge.labels import LABELS


def faces_of(folder: Path, n: int) -> np.ndarray:
    import cv2

    out = []
    for label in LABELS:
        for path in sorted((folder / label).glob("*"))[: max(1, n // len(LABELS))]:
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is not None:
                out.append(img)
    return np.stack(out)[..., None].astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="the Keras model the shipped int8 came from")
    ap.add_argument("--calibration-data", required=True, type=Path)
    ap.add_argument("--calibration-size", type=int, default=350)
    ap.add_argument("--faces", required=True, type=Path, help="class folder of held-out faces")
    ap.add_argument("--n", type=int, default=700, help="held-out faces to run (default 700)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    model = keras.models.load_model(args.model, compile=False)
    size = int(model.input_shape[1])
    splits = load_source(args.calibration_data, size)
    calib = representative_set(splits, args.calibration_data, args.calibration_size, 0)
    held = faces_of(args.faces, args.n)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: calib.batches(1)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8

    def debug_data():
        for face in held:
            yield [face[None]]

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=debug_data
    )
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    layers = []
    for row in rows:
        scale = float(row["scale"])
        if scale <= 0:
            continue
        rmse = float(np.sqrt(float(row["mean_squared_error"])))
        layers.append(
            {
                "op": row["op_name"],
                "tensor": row["tensor_name"],
                "scale": scale,
                "zero_point": int(float(row["zero_point"])),
                "rmse": rmse,
                "rmse_over_scale": rmse / scale,
                "max_abs_error_over_scale": float(row["max_abs_error"]) / scale,
            }
        )
    ranked = sorted(layers, key=lambda r: -r["rmse_over_scale"])
    print(f"{len(layers)} quantised tensors; {len(held)} held-out faces; worst first:")
    print(f"{'op':22s} {'rmse/scale':>10s} {'max/scale':>9s}  tensor")
    for r in ranked[: args.top]:
        print(
            f"{r['op']:22s} {r['rmse_over_scale']:10.3f} {r['max_abs_error_over_scale']:9.2f}  "
            f"{r['tensor'][-60:]}"
        )
    write_json(
        args.json,
        {
            "model": str(args.model),
            "held_out_faces": len(held),
            "calibration_faces": len(calib),
            "layers_in_graph_order": layers,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
