"""Between the desktop and the GPU trainer (this package): the faces out, the weights back.

- :func:`pack_faces`: the training faces and the validation slice exactly as ``deepfer train``
  splits them (``prepare_data``: FER2013 Training, ``val_split`` stratified with
  ``split_seed``), as their original JPEG files concatenated, with the labels and a checksum
  of the decoded pixels (the trainer checks it, so it trains on the pixels training here sees).
- :func:`to_keras`: one model of a ``teachers-K.npz`` / ``students.npz`` into the Keras
  ``deepfer-vgg`` (same layer names), saved as ``.keras``.

- :func:`from_keras`: a ``.keras`` ``deepfer-vgg`` as a weights file (a teacher or a start).

``python -m deepfer.train.gpu.bridge pack DATA OUT.npz``, ``... import WEIGHTS.npz OUT_DIR``,
``... export MODEL.keras OUT.npz``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from .files import model_indices
from .model import layer_weights


def pack_faces(data: str, out: str | Path, val_split: float = 0.1, split_seed: int = 1337) -> dict:
    """Write the training faces and validation slice for the GPU trainer; return the counts."""
    from deepfer.data.splits import find_split_dir
    from deepfer.train.config import TrainConfig
    from deepfer.train.training import prepare_data

    cfg = TrainConfig(data=data, val_split=val_split, split_seed=split_seed, progress=False)
    splits = prepare_data(cfg.validate())
    folder = find_split_dir(Path(data), "train")
    if folder is None or not splits["train"].files:
        raise ValueError(f"{data}: pack needs the FER2013 folder layout (train/<class>/*.jpg)")
    arrays = {}
    for name, ds in splits.items():
        blobs = [(folder / f).read_bytes() for f in ds.files]
        offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"{name}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{name}_offsets"] = offsets
        arrays[f"{name}_y"] = ds.y.astype(np.int8)
        arrays[f"{name}_sha256"] = np.array(hashlib.sha256(ds.x[..., 0].tobytes()).hexdigest())
    np.savez(out, **arrays)
    return {name: len(ds) for name, ds in splits.items()}


def to_keras(path: str | Path, index: int):
    """Model ``index`` of a weights ``.npz`` as a Keras ``deepfer-vgg``."""
    from deepfer.train.models import make_model

    model = make_model("deepfer-vgg", (48, 48, 1))
    with np.load(path) as d:
        for layer, names in layer_weights().items():
            model.get_layer(layer).set_weights([d[f"m{index}/{n}"] for n in names])
    return model


def from_keras(model_path: str | Path, out: str | Path, dtype: str = "float32") -> None:
    """A Keras ``deepfer-vgg`` (``.keras``) as a one-model weights file (``m0/<name>``)."""
    import keras

    model = keras.models.load_model(model_path)
    arrays = {}
    for layer, names in layer_weights().items():
        for name, w in zip(names, model.get_layer(layer).get_weights(), strict=True):
            arrays[f"m0/{name}"] = w.astype(dtype)
    np.savez(out, **arrays)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pack", help="faces for the GPU trainer")
    p.add_argument("data", help="FER2013 folder (train/<class>/*.jpg)")
    p.add_argument("out", help="the .npz to write")
    p.add_argument("--split-seed", type=int, default=1337)
    p = sub.add_parser("import", help="weights back as .keras models")
    p.add_argument("weights", help="teachers-K.npz or students.npz")
    p.add_argument("out", help="folder for <stem>-m<i>.keras")
    p = sub.add_parser("export", help="a .keras deepfer-vgg as a weights file (e.g. a teacher)")
    p.add_argument("model", help="the .keras model")
    p.add_argument("out", help="the .npz to write")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    args = ap.parse_args(argv)
    if args.what == "export":
        from_keras(args.model, args.out, args.dtype)
        return 0
    if args.what == "pack":
        print(pack_faces(args.data, args.out, split_seed=args.split_seed))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in model_indices(args.weights):
        target = out / f"{Path(args.weights).stem}-m{i}.keras"
        to_keras(args.weights, i).save(target)
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
