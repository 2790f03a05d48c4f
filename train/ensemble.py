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
from deepfer.edge.paths import file_sha256, unwritable
from deepfer.evaluate.model_file import deepfer_order_problem, keras_file_problem
from deepfer.train.ensemble_record import ensemble_record_path, write_ensemble_record
from deepfer.train.run_folder import RunFolder

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
    from deepfer.evaluate.keras_model import with_dtype_policy
    from deepfer.train.models import load_keras_model

    _check_member_file(path)
    model = with_dtype_policy(load_keras_model(path, error=EnsembleError))
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    out = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if shape is None or len(shape) != 4 or out is None:
        raise EnsembleError(
            f"{path}: not a DeepFER emotion classifier (input {model.input_shape}, output "
            f"{model.output_shape}; expected one image input and {len(LABELS)} scores)"
        )
    if problem := deepfer_order_problem(path, out, "an ensemble's member"):
        raise EnsembleError(problem)
    run = RunFolder.containing(path)
    trained_on, training = run.training_info(path) if run is not None else ("unknown", {})
    return Member(path, model, shape[1:], file_sha256(path), trained_on, training)


def _check_member_file(path: Path) -> None:
    if not path.is_file():
        raise EnsembleError(f"{path}: model file not found")
    if path.suffix.lower() not in (".keras", ".h5"):
        raise EnsembleError(f"{path}: expected a Keras model (.keras or .h5)")
    if problem := keras_file_problem(path):
        raise EnsembleError(f"{path}: {problem}")


def display_names(paths: list[Path]) -> list[str]:
    """Names that tell ``paths`` apart in a printout: each file's name, or as many of its
    last path parts as it takes (``a/deepfer-edge.keras``, ``b/deepfer-edge.keras``)."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    for n in range(1, max(len(p) for p in parts) + 1):
        names = [str(Path(*p[-n:])) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]  # the same file given twice


#: What each field of a member's validation slice is called when members differ.
SPLIT_FIELDS = ("data", "split seed", "val_split", "input_size", "max_per_class")


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

    keys, config = [], None
    for m in members:
        run = RunFolder.containing(m.path)
        if run is None:
            raise EnsembleError(
                f"{m.path}: not in a `deepfer train` run folder, so its validation slice is "
                "unknown; give members trained with `deepfer train` on the same split "
                "(--split-seed), or --no-score"
            )
        cfg = TrainConfig.from_json(run.read_config())
        data = str(cfg.data)
        if Path(data).exists():  # the same folder however the run wrote it
            data = str(Path(data).resolve())
        keys.append((data, cfg.data_seed, cfg.val_split, cfg.input_size, cfg.max_per_class))
        config = config or cfg
    if len(set(keys)) > 1:
        names = display_names([m.path for m in members])
        differ = [
            f"{field} " + ", ".join(f"{key[i]!r} ({name})" for key, name in zip(keys, names))
            for i, field in enumerate(SPLIT_FIELDS)
            if len({key[i] for key in keys}) > 1
        ]
        raise EnsembleError(
            "the members were selected on different validation slices: "
            f"{'; '.join(differ)}; scoring and weighting them needs one shared slice (train "
            "them on the same --data with the same --split-seed), or give --no-score"
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
    for path in paths:
        if _same_file(out, path):
            raise EnsembleError(
                f"--out {out}: is the member {path}; it would be overwritten: give another file"
            )
    for target in (out, ensemble_record_path(out)):
        if why := unwritable(target):
            raise EnsembleError(f"--out {target}: {why}")
    for path in paths:
        _check_member_file(path)
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
        names = display_names(paths)
        for entry, p, name in zip(record_members, probs, names):
            entry["val_accuracy"] = float((p.argmax(1) == val.y).mean())
            echo(f"{name}: validation {entry['val_accuracy']:.2%}")

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


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (the same path, or links to one file)."""
    if Path(os.path.abspath(a)) == Path(os.path.abspath(b)) or a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
