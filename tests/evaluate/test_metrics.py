"""The numpy metrics of ``deepfer evaluate`` and ``deepfer benchmark`` agree with scikit-learn's.

DeepFER keeps its own numpy metrics so an edge install (no scikit-learn) can evaluate a
.tflite model; here each one is checked against scikit-learn on random inputs and on the
awkward cases: a class never predicted, a class with no faces, both, one class only,
tied scores (int8 models give many), and a handful of faces.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from deepfer.evaluate.metrics import (
    auc,
    evaluate_predictions,
    per_class_f1,
    report_metrics,
    roc_curve,
)

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the train extra")

K = 7
LABELS = [f"c{i}" for i in range(K)]


def random_probs(rng, n: int, k: int = K, ties: bool = False) -> np.ndarray:
    p = rng.dirichlet(np.ones(k) * 0.7, size=n)
    if ties:  # an int8 output has 256 levels; coarser still to force many ties
        p = np.round(p * 16) / 16 + 1e-9
        p /= p.sum(1, keepdims=True)
    return p


def with_predictions(rng, y: np.ndarray, never: list[int], k: int = K) -> np.ndarray:
    """Probabilities whose argmax is mostly right but never one of ``never``."""
    p = random_probs(rng, len(y), k)
    right = rng.random(len(y)) < 0.6
    p[right, y[right]] += 1.0
    p[:, never] *= 0.01  # these columns never win
    return p / p.sum(1, keepdims=True)


def cases():
    rng = np.random.default_rng(7)
    y = rng.integers(0, K, 500)
    yield "random", y, random_probs(rng, 500)
    yield "random, tied scores", y, random_probs(rng, 500, ties=True)
    y = rng.integers(0, K, 300)
    yield "a class never predicted", y, with_predictions(rng, y, never=[1])
    y = rng.choice([0, 2, 3, 4, 5, 6], 300)  # no "disgust" faces at all
    yield "a class with no faces", y, with_predictions(rng, y, never=[])
    y = rng.choice([0, 2, 3, 4, 5, 6], 300)
    yield "no faces and never predicted", y, with_predictions(rng, y, never=[1, 5])
    y = rng.integers(0, K, 9)
    yield "nine faces", y, random_probs(rng, 9)
    y = np.full(40, 3)
    yield "one class only", y, random_probs(rng, 40)


def sklearn_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's AUC; nan where it is undefined (older versions raise, newer warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(metrics.roc_auc_score(positive, scores))
        except ValueError:
            return float("nan")


CASES = list(cases())
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("name", "y", "probs"), CASES, ids=IDS)
def test_accuracy_f1_precision_recall_and_confusion_match_sklearn(name, y, probs):
    m = evaluate_predictions(y, probs, LABELS)
    pred = probs.argmax(1)
    everyone = list(range(K))

    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    p, r, f, s = metrics.precision_recall_fscore_support(y, pred, labels=everyone, zero_division=0)
    for c, label in enumerate(LABELS):
        got = m["per_class"][label]
        assert got["precision"] == pytest.approx(p[c]), (label, "precision")
        assert got["recall"] == pytest.approx(r[c]), (label, "recall")
        assert got["f1"] == pytest.approx(f[c]), (label, "f1")
        assert got["support"] == s[c]
    # sklearn's default labels: the classes in the truth or the predictions
    assert m["macro_f1"] == pytest.approx(
        metrics.f1_score(y, pred, average="macro", zero_division=0)
    )
    assert m["weighted_f1"] == pytest.approx(
        metrics.f1_score(y, pred, average="weighted", zero_division=0)
    )
    cm = m["confusion_matrix"]
    np.testing.assert_array_equal(cm["counts"], metrics.confusion_matrix(y, pred, labels=everyone))
    np.testing.assert_allclose(
        cm["normalized"],
        metrics.confusion_matrix(y, pred, labels=everyone, normalize="true"),
        atol=5e-5,  # the report rounds to 4 places
    )


@pytest.mark.parametrize(("name", "y", "probs"), CASES, ids=IDS)
def test_macro_f1_over_the_classes_with_faces_matches_sklearn_labels(name, y, probs):
    """``deepfer benchmark``'s macro-F1 (``average_over="truth"``): a class with no faces in the
    data (no folder for it) is left out, as scikit-learn's ``labels=`` the classes with faces."""
    m = evaluate_predictions(y, probs, LABELS, average_over="truth")
    pred = probs.argmax(1)
    with_faces = np.unique(y)
    assert m["macro_f1"] == pytest.approx(
        metrics.f1_score(y, pred, labels=with_faces, average="macro", zero_division=0)
    )
    assert m["macro_f1_over"] == [LABELS[c] for c in with_faces]
    seen = evaluate_predictions(y, probs, LABELS)  # the default: truth or predictions
    assert seen["macro_f1_over"] == [LABELS[c] for c in np.union1d(y, pred)]
    assert m["per_class"] == seen["per_class"]  # only the average changes


def test_average_over_is_checked():
    with pytest.raises(ValueError, match="average_over"):
        evaluate_predictions(np.zeros(2, int), np.eye(K)[[0, 0]], LABELS, average_over="all")


@pytest.mark.parametrize(("name", "y", "probs"), CASES, ids=IDS)
def test_the_reported_metrics_leave_classes_without_faces_out(name, y, probs):
    """What evaluate, benchmark and convert's check report (:func:`report_metrics`): a class
    with no faces has no recall or F1 (None, not scikit-learn's 0), no precision unless it was
    predicted (0 then), and is left out of macro-F1; every other figure is unchanged."""
    m = report_metrics(y, probs, LABELS)
    plain = evaluate_predictions(y, probs, LABELS, average_over="truth")
    pred = probs.argmax(1)
    absent = [label for c, label in enumerate(LABELS) if not (y == c).any()]
    assert m["absent_classes"] == absent
    assert (
        m["macro_f1"]
        == plain["macro_f1"]
        == pytest.approx(
            metrics.f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0)
        )
    )
    assert m["macro_f1_over"] == [label for label in LABELS if label not in absent]
    for c, label in enumerate(LABELS):
        got, was = m["per_class"][label], plain["per_class"][label]
        if label in absent:
            assert got["recall"] is None and got["f1"] is None and got["auc"] is None
            assert got["precision"] == (0.0 if (pred == c).any() else None)
            assert per_class_f1(m)[label] is None
        else:
            assert got == was and per_class_f1(m)[label] == was["f1"]
    for key in ("n", "accuracy", "weighted_f1", "macro_auc", "confusion_matrix", "auc"):
        assert m[key] == plain[key], key


def test_with_every_class_present_the_reported_metrics_are_the_plain_ones():
    """The shipped models' figures (all 7 classes in FER2013's splits) do not move: the rule
    for a class with no faces changes nothing when every class has faces."""
    rng = np.random.default_rng(3)
    y = np.r_[np.arange(K), rng.integers(0, K, 400)]
    probs = with_predictions(rng, y, never=[1])  # a class never predicted still counts
    m, plain = report_metrics(y, probs, LABELS), evaluate_predictions(y, probs, LABELS)
    assert m.pop("absent_classes") == [] and m == plain  # bit for bit
    assert m["macro_f1_over"] == LABELS
    assert per_class_f1(m) == {label: v["f1"] for label, v in plain["per_class"].items()}


@pytest.mark.parametrize(("name", "y", "probs"), CASES, ids=IDS)
def test_one_vs_rest_roc_and_auc_match_sklearn(name, y, probs):
    m = evaluate_predictions(y, probs, LABELS)
    expected = {}
    for c, label in enumerate(LABELS):
        positive = y == c
        if positive.all() or not positive.any():  # undefined: sklearn refuses it too
            assert m["auc"][label] is None and m["per_class"][label]["auc"] is None
            assert np.isnan(sklearn_auc(positive, probs[:, c]))
            continue
        expected[label] = sklearn_auc(positive, probs[:, c])
        assert m["auc"][label] == pytest.approx(expected[label]), label

        fpr, tpr, thresholds = roc_curve(positive, probs[:, c])
        sk_fpr, sk_tpr, sk_thr = metrics.roc_curve(positive, probs[:, c], drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
        np.testing.assert_allclose(thresholds[1:], sk_thr[1:])
        assert auc(fpr, tpr) == pytest.approx(metrics.auc(sk_fpr, sk_tpr))
    if expected:
        assert m["macro_auc"] == pytest.approx(np.mean(list(expected.values())))
    else:
        assert m["macro_auc"] is None
    if len(expected) == K:  # every class present: sklearn's one-vs-rest macro AUC
        assert m["macro_auc"] == pytest.approx(
            metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro")
        )


def test_roc_curve_refuses_one_sided_labels():
    with pytest.raises(ValueError):
        roc_curve(np.ones(5, bool), np.linspace(0, 1, 5))
    with pytest.raises(ValueError):
        roc_curve(np.zeros(5, bool), np.linspace(0, 1, 5))
