"""An ensemble of DeepFER classifiers as one Keras model (one graph, one ``.tflite``).

Each member sees the same raw 0..255 face (normalisation is inside each member, as the model
contract says) and the ensemble outputs the weighted mean of the members' class scores, so
it loads, converts and runs on the device like any single model; the cost per face is the
sum of the members'. Members may already be flip-averaged (``deepfer average
--flip-average``).

Weights are fixed, not learnt: equal by default, or given. With ``weights="search"`` the
first member's weight is chosen from a coarse grid on the validation slice the members were
selected on (one number chosen on 2,872 faces; the grid is coarse so the choice cannot
fit that slice's noise much).

``ENSEMBLE.keras`` gets ``ENSEMBLE.ensemble.json`` beside it: the members (path, sha256,
what each was trained on), the weights and each figure on the validation slice. Its layout is
owned by :mod:`deepfer.train.run_folder` (what ``deepfer convert`` reads for the sidecar).
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deepfer.edge.errors import DeepFERError
from deepfer.edge.labels import LABELS
from deepfer.edge.paths import file_sha256
from deepfer.train.run_folder import RunFolder, ensemble_record_path, write_ensemble_record

#: Weights tried for the first member with ``weights="search"`` (the rest share the remainder).
SEARCH_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)


class EnsembleError(DeepFERError, ValueError):
    """Members that cannot be combined (missing, different inputs, no shared validation)."""


def build_ensemble(models: list, weights: list[float], name: str = "deepfer_ensemble"):
    """One Keras model: the ``weights``-weighted mean of ``models``' scores on the same input.

    Built from stock layers (members nested as sub-models; a fixed Dense over their
    concatenated scores does the weighting, an Average when the weights are equal), so it
    saves, loads and converts like any model.
    """
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    shape = models[0].input_shape[1:]
    inputs = keras.Input(shape=shape, name="face")
    outs = []
    for i, model in enumerate(models):
        wrapper = keras.Model(model.inputs[0], model.outputs[0], name=f"member_{i}")
        outs.append(wrapper(inputs))
    k = int(models[0].output_shape[-1])
    if len(set(weights)) == 1:
        outputs = keras.layers.Average(name="ensemble_average")(outs)
    else:
        stacked = keras.layers.Concatenate(name="member_scores")(outs)
        mix = keras.layers.Dense(k, use_bias=False, trainable=False, name="ensemble_weights")
        outputs = mix(stacked)
        matrix = np.concatenate([w * np.eye(k, dtype="float32") for w in weights])
        mix.set_weights([matrix])
    return keras.Model(inputs, outputs, name=name)


@dataclass
class Member:
    path: Path
    model: object
    input_shape: tuple
    sha256: str
    trained_on: str
    training: dict


def _load_member(path: Path) -> Member:
    """A Keras emotion classifier (one square image input, one score per label), float32."""
    import keras

    from deepfer.evaluate.keras_model import with_dtype_policy

    if not path.is_file():
        raise EnsembleError(f"{path}: model file not found")
    if path.suffix.lower() not in (".keras", ".h5"):
        raise EnsembleError(f"{path}: expected a Keras model (.keras or .h5)")
    try:
        model = with_dtype_policy(keras.models.load_model(path, compile=False))
    except Exception as exc:  # keras raises many types for a bad file
        raise EnsembleError(f"{path}: cannot load it as a Keras model ({exc})") from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if shape is None or len(shape) != 4 or out is None or out[-1] != len(LABELS):
        raise EnsembleError(
            f"{path}: not a DeepFER emotion classifier (input {model.input_shape}, output "
            f"{model.output_shape}; expected one image input and {len(LABELS)} scores)"
        )
    run = RunFolder.containing(path)
    trained_on, training = run.training_info(path) if run is not None else ("unknown", {})
    return Member(path, model, shape[1:], file_sha256(path), trained_on, training)


def _load_members(paths: list[Path]) -> list[Member]:
    members = [_load_member(path) for path in paths]
    first = members[0]
    for m in members[1:]:
        if m.input_shape != first.input_shape:
            raise EnsembleError(
                f"{m.path}: input {m.input_shape} differs from {first.path}'s "
                f"{first.input_shape}; ensemble members must take the same face crop"
            )
    return members


def _validation(members) -> tuple[object, str]:
    """The validation slice every member's run selected on (same data, split and size)."""
    from deepfer.data.dataset import DataError
    from deepfer.train.config import ConfigError, TrainConfig
    from deepfer.train.training import prepare_data

    keys, config = set(), None
    for m in members:
        run = RunFolder.containing(m.path)
        if run is None:
            raise EnsembleError(
                f"{m.path}: not in a `deepfer train` run folder, so its validation slice is "
                "unknown; give members trained with `deepfer train` on the same split "
                "(--split-seed), or --no-score"
            )
        cfg = TrainConfig.from_json(run.read_config())
        keys.add((str(cfg.data), cfg.data_seed, cfg.val_split, cfg.input_size, cfg.max_per_class))
        config = config or cfg
    if len(keys) > 1:
        raise EnsembleError(
            "the members were trained on different data or validation splits "
            f"({'; '.join(str(k) for k in sorted(keys, key=str))}); a shared validation slice "
            "is needed to score and weight them, or --no-score"
        )
    config.progress = False
    try:
        val = prepare_data(config)["val"]
    except (ConfigError, DataError, OSError) as exc:
        raise EnsembleError(f"cannot load the members' data {config.data!r}: {exc}") from None
    return val, f"validation slice ({len(val):,} faces of {Path(str(config.data)).name})"


def make_ensemble(
    paths: list[str | Path],
    out: str | Path,
    weights: list[float] | str | None = None,
    score: bool = True,
    echo=print,
) -> dict:
    """Combine the models at ``paths`` into ``out`` (.keras) and its record; returns the record.

    ``weights``: None (equal), a list (one per member, normalised to sum 1) or ``"search"``
    (two members: the first's weight from :data:`SEARCH_GRID`, chosen on the validation
    slice). With ``score``, every member and the ensemble are scored on the members' shared
    validation slice.
    """
    import numpy as np

    paths = [Path(p) for p in paths]
    out = Path(out)
    if len(paths) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    if out.suffix != ".keras":
        raise EnsembleError(f"{out}: the ensemble is saved as a .keras model")
    if weights == "search" and (len(paths) != 2 or not score):
        raise EnsembleError("--weights search needs exactly two members and the validation slice")
    if isinstance(weights, list):
        if len(weights) != len(paths):
            raise EnsembleError(f"{len(weights)} weights for {len(paths)} members")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise EnsembleError(f"weights {weights}: must be non-negative and not all zero")
        weights = [w / sum(weights) for w in weights]
    members = _load_members(paths)

    record_members = [
        {
            "path": str(m.path),
            "sha256": m.sha256,
            "trained_on": m.trained_on,
            "training": m.training,
            "parameters": int(m.model.count_params()),
        }
        for m in members
    ]
    record: dict = {"keras": str(out), "members": record_members}
    if score:
        val, where = _validation(members)
        x = val.x.astype(np.float32)
        probs = [m.model.predict(x, batch_size=256, verbose=0) for m in members]
        for entry, p in zip(record_members, probs):
            entry["val_accuracy"] = float((p.argmax(1) == val.y).mean())
            echo(f"{Path(entry['path']).name}: validation {entry['val_accuracy']:.2%}")

        def accuracy(ws):
            mixed = sum(w * p for w, p in zip(ws, probs))
            return float((mixed.argmax(1) == val.y).mean())

        if weights == "search":
            tried = {w: accuracy([w, 1 - w]) for w in SEARCH_GRID}
            for w, acc in tried.items():
                echo(f"weights {w:.1f}/{1 - w:.1f}: validation {acc:.2%}")
            best = max(tried, key=lambda w: (tried[w], -abs(w - 0.5)))  # ties: nearer equal
            weights = [best, 1 - best]
            record["weight_search"] = {f"{w:.1f}": a for w, a in tried.items()}
        weights = weights or [1 / len(paths)] * len(paths)
        record["val_accuracy"] = accuracy(weights)
        record["selected_on"] = where
        echo(f"ensemble: validation {record['val_accuracy']:.2%}")
    weights = weights or [1 / len(paths)] * len(paths)
    for entry, w in zip(record_members, weights):
        entry["weight"] = float(w)
    model = build_ensemble([m.model for m in members], list(weights))
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record["parameters"] = int(model.count_params())
    write_ensemble_record(out, record)
    echo(f"saved {out} ({record['parameters']:,} parameters) and {ensemble_record_path(out).name}")
    return record
