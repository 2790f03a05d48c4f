"""`deepfer train --teacher T.keras`: the student learns a teacher's scores on fixed views of
each face, scored once and cached in the run folder. Tiny set, real Keras models."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from synthetic import TINY_TRAIN as TINY  # the shared tiny runs' options

from deepfer.cli import main
from deepfer.edge.labels import LABELS
from deepfer.train.config import ConfigError, TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher(tiny_run):
    return tiny_run / "deepfer-edge.keras"


def test_student_learns_the_teachers_scores_on_cached_views(teacher, tiny_fer, tmp_path, capsys):
    import keras

    from deepfer.train.run_folder import RunFolder
    from deepfer.train.training import prepare_data

    run = tmp_path / "student"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "1", *TINY]
    argv += ["--seed", "5", "--split-seed", "9", "--teacher", str(teacher), "--teacher-views", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"teacher scores: deepfer-edge.keras on \d+ views", out)
    cache = RunFolder(run).teacher_cache
    saved = np.load(cache)
    cfg = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    train = prepare_data(cfg)["train"]
    views, scores = saved["views"], saved["scores"]
    assert views.shape == (3, *train.x.shape) and views.dtype == np.uint8
    assert np.array_equal(views[0], train.x)  # the faces themselves, then augmented copies
    assert not np.array_equal(views[1], train.x) and not np.array_equal(views[1], views[2])
    assert np.array_equal(saved["labels"], train.y)
    # the cached scores are the teacher's on those views
    model = keras.models.load_model(teacher, compile=False)
    again = model.predict(views[1].astype(np.float32), verbose=0)
    assert np.allclose(again, scores[1], atol=1e-5)
    assert np.allclose(scores.sum(-1), 1.0, atol=1e-4)
    assert json.loads((run / "config.json").read_text())["teacher"] == str(teacher)
    assert (run / "deepfer-edge.keras").is_file()
    # what the converter writes in the sidecar: the teacher, its views and weight
    text, info = RunFolder(run).training_info(run / "deepfer-edge.keras")
    assert text.endswith("; distilled from deepfer-edge.keras")
    distilled = info["distilled_from"]
    assert distilled["teacher"] == str(teacher) and distilled["teacher_views"] == 3
    assert distilled["teacher_weight"] == 0.7 and len(distilled["sha256"]) == 64
    assert distilled["teacher_target"] == "view"

    # resumed for one more epoch: the cache is reused, not scored again
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "teacher scores: reusing" in capsys.readouterr().out


def test_the_targets_mix_the_teachers_scores_and_the_label(teacher, tiny_fer, tmp_path):
    import tensorflow as tf

    from deepfer.train.distill import distilled_dataset
    from deepfer.train.run_folder import RunFolder
    from deepfer.train.training import prepare_data

    cfg = TrainConfig(data=str(tiny_fer), teacher=str(teacher), teacher_views=2, flip=True,
                      teacher_weight=0.25, split_seed=9, progress=False)  # fmt: skip
    train = prepare_data(cfg)["train"]
    run = RunFolder(tmp_path / "targets")
    data = distilled_dataset(cfg, run, train, None, batch_size=len(train), seed=1)
    x, y = next(iter(data))
    saved = np.load(run.teacher_cache)
    scores = saved["scores"]
    onehot = np.eye(7, dtype=np.float32)[train.y]
    assert x.shape == (len(train), 48, 48, 1) and x.dtype == tf.float32
    assert np.allclose(np.asarray(y).sum(1), 1.0, atol=1e-5)
    # every target is 0.25 * the teacher's scores on one of the face's views + 0.75 * label
    for xi, yi in zip(np.asarray(x)[:10], np.asarray(y)[:10]):
        hits = [
            (v, i)
            for v in range(2)
            for i in np.flatnonzero((saved["views"][v] == xi.astype(np.uint8)).all((1, 2, 3)))
        ]
        assert any(np.allclose(yi, 0.25 * scores[v, i] + 0.75 * onehot[i]) for v, i in hits)


def test_face_targets_give_every_view_the_teachers_scores_on_the_face(teacher, tiny_fer, tmp_path):
    from deepfer.train.distill import distilled_dataset
    from deepfer.train.run_folder import RunFolder
    from deepfer.train.training import prepare_data

    cfg = TrainConfig(data=str(tiny_fer), teacher=str(teacher), teacher_views=3, flip=False,
                      zoom_out=0.3, teacher_weight=1.0, teacher_target="face", split_seed=9,
                      progress=False)  # fmt: skip
    train = prepare_data(cfg)["train"]
    run = RunFolder(tmp_path / "face-targets")
    x, y = next(iter(distilled_dataset(cfg, run, train, None, batch_size=len(train), seed=2)))
    saved = np.load(run.teacher_cache)
    views, scores = saved["views"], saved["scores"]
    assert not np.array_equal(views[1], views[0])  # the zoomed-out views differ from the faces
    seen_reframed = False
    for xi, yi in zip(np.asarray(x), np.asarray(y)):
        hits = [
            (v, i)
            for v in range(3)
            for i in np.flatnonzero((views[v] == xi.astype(np.uint8)).all((1, 2, 3)))
        ]
        assert hits and all(np.allclose(yi, scores[0, i], atol=1e-6) for _, i in hits)
        seen_reframed |= any(
            v > 0 and not np.array_equal(views[v, i], views[0, i]) for v, i in hits
        )
    assert seen_reframed


def test_the_teacher_cache_follows_the_faces_not_the_data_path(
    teacher, tiny_fer, tmp_path, monkeypatch, capsys
):
    """The cache is keyed by the training faces themselves: the same data given through a
    relative path or from where it was moved (`train --resume --data`) reuses it (it was keyed
    by the path as given and scored again); a face changed is scored again. A cache written
    before, keyed by the path, is still used where its faces are this split's."""
    import shutil

    import cv2

    from deepfer.train.distill import teacher_key, teacher_targets
    from deepfer.train.run_folder import RunFolder
    from deepfer.train.training import prepare_data

    def targets(data):
        cfg = TrainConfig(data=str(data), teacher=str(teacher), teacher_views=2, flip=True,
                          split_seed=9, progress=False)  # fmt: skip
        train = prepare_data(cfg)["train"]
        views, _ = teacher_targets(cfg, run, train, None)
        assert np.array_equal(views[0], train.x)
        return cfg, train, capsys.readouterr().out

    run = RunFolder(tmp_path / "run")
    assert "teacher scores: deepfer-edge.keras on" in targets(tiny_fer)[2]
    moved = tmp_path / "moved" / "fer"
    shutil.copytree(tiny_fer, moved)
    assert "reusing" in targets(moved)[2]
    monkeypatch.chdir(moved.parent)
    assert "reusing" in targets("fer")[2]
    # a cache of the earlier format: the data's path in its key, no digest of the faces
    with np.load(run.teacher_cache) as npz:
        saved = dict(npz)
    cfg, train, _ = targets("fer")
    old_key = {**teacher_key(cfg, teacher, train), "data": "/where/it/was"}
    del old_key["faces_sha256"]
    np.savez(run.teacher_cache, **{**saved, "key": json.dumps(old_key)})
    assert "reusing" in targets("fer")[2]
    # the faces changed (the old cache's first view differs): scored again
    for face in (moved / "train" / "happy").iterdir():
        cv2.imwrite(str(face), 255 - cv2.imread(str(face), cv2.IMREAD_GRAYSCALE))
    assert "made otherwise; scoring again" in targets("fer")[2]
    assert "reusing" in targets("fer")[2]  # the new cache, digest and all
    assert "scoring again" in targets(tiny_fer)[2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"teacher_target": "crop"}, "train.teacher_target = 'crop': choose view or face"),
        ({"teacher": "/no/such.keras"}, "expected an existing .keras model"),
        ({"teacher_views": 0}, "train.teacher_views = 0: must be at least 1"),
        ({"teacher_weight": 1.5}, "train.teacher_weight = 1.5: must be in [0, 1]"),
        ({"mixup": 0.2}, "cannot go with --teacher"),
    ],
)
def test_bad_distillation_options_name_the_option(teacher, tmp_path, change, message):
    cfg = replace(TrainConfig(data=str(tmp_path), teacher=str(teacher)), **change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate()


def test_a_teacher_that_cannot_score_the_faces_is_refused(tmp_path, tiny_fer, capsys):
    import keras

    wrong = tmp_path / "wrong.keras"
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs))).save(wrong)
    run = tmp_path / "student"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "1", *TINY]
    assert main([*argv, "--teacher", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "train.teacher" in err and "(None, 48, 48, 1) faces in" in err

    # the right shape, but its own sidecar names another order: its scores would teach the
    # wrong classes
    other = tmp_path / "other.keras"
    inputs = keras.Input((48, 48, 1))
    keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs))).save(other)
    order = ["happy", *[c for c in LABELS if c != "happy"]]
    other.with_suffix(".json").write_text(
        json.dumps({"labels": order, "input": {"size": [48, 48]}, "trained_on": "x", "metrics": {}})
    )
    assert main([*argv, "--teacher", str(other)]) == 2
    err = capsys.readouterr().err
    assert "other.json names its outputs happy, angry" in err and "a teacher must" in err


def test_ferplus_votes_soften_the_training_labels_only(tiny_fer, tmp_path, capsys):
    """--soft-labels: the label side of each training target mixes in the face's FER+ vote
    shares; validation keeps the FER2013 labels; the converter's record says so."""
    from deepfer.data.ferplus import FERPLUS_COLUMNS
    from deepfer.train.distill import label_targets
    from deepfer.train.run_folder import RunFolder
    from deepfer.train.training import prepare_data

    cfg = TrainConfig(data=str(tiny_fer), split_seed=9, progress=False)
    train = prepare_data(cfg)["train"]
    votes = tmp_path / "votes.csv"
    rows = []
    for name in train.files[::2]:  # every other face has votes: all for 'happy'
        counts = {c: 0 for c in FERPLUS_COLUMNS}
        counts["happiness"] = 10
        rows.append(name + "," + ",".join(str(v) for v in counts.values()))
    votes.write_text("file," + ",".join(FERPLUS_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    soft = replace(cfg, soft_labels=str(votes), soft_weight=0.25).validate()
    targets = label_targets(soft, train)
    onehot = np.eye(7, dtype=np.float32)[train.y]
    happy = np.eye(7, dtype=np.float32)[LABELS.index("happy")]
    assert np.allclose(targets[::2], 0.75 * onehot[::2] + 0.25 * happy)
    assert np.array_equal(targets[1::2], onehot[1::2])
    assert np.allclose(label_targets(cfg, train), onehot)  # off: one-hot as before

    run = tmp_path / "soft"
    argv = ["train", "--data", str(tiny_fer), "--out", str(run), "--epochs", "1", *TINY]
    assert main([*argv, "--split-seed", "9", "--soft-labels", str(votes)]) == 0
    assert re.search(
        r"soft labels: FER\+ votes \(votes.csv\) on \d+ of \d+ faces", capsys.readouterr().out
    )
    text, info = RunFolder(run).training_info(run / "deepfer-edge.keras")
    assert info["soft_labels"] == {"votes": str(votes), "weight": 0.3}
    assert "FER+ votes as a soft prior (weight 0.3)" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"soft_labels": "ferplus"}, "no FER+ votes file at"),
        ({"soft_labels": "/no/votes.csv"}, "train.soft_labels = '/no/votes.csv': no FER+ votes"),
        ({"soft_weight": 1.5, "soft_labels": "VOTES"}, "train.soft_weight = 1.5: must be in"),
        ({"mixup": 0.2, "soft_labels": "VOTES"}, "cannot go with --soft-labels"),
    ],
)
def test_bad_soft_label_options_name_the_option(tmp_path, change, message):
    votes = tmp_path / "votes.csv"
    votes.write_text("file\n")
    if change.get("soft_labels") == "VOTES":
        change = {**change, "soft_labels": str(votes)}
    cfg = replace(TrainConfig(data=str(tmp_path)), **change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate()
