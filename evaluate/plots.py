"""PNG plots of an evaluation (confusion matrices, ROC curves) and of a benchmark (accuracy
against size and latency); matplotlib, headless, imported when a plot is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(
    cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Counts and row-normalised confusion matrices side by side; a class with no faces (a row
    of zeros: nothing to normalise) is named ``(no faces)`` and its shares are ``-``."""
    plt = pyplot()
    cm = np.asarray(cm)
    empty = cm.sum(axis=1) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    norm = np.nan_to_num(norm)
    rows = [f"{label} (no faces)" if empty[i] else label for i, label in enumerate(labels)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, mat, name, fmt in (
        (axes[0], cm, "counts", "d"),
        (axes[1], norm, "row-normalised", ".2f"),
    ):
        im = ax.imshow(mat, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {name}" if title else name)
        threshold = mat.max() / 2 if mat.size else 0
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(
                    j,
                    i,
                    "-" if fmt != "d" and empty[i] else format(mat[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if mat[i, j] > threshold else "black",
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
    path: str | Path,
    title: str = "",
    labels: Sequence[str] = (),
) -> Path:
    """One-vs-rest ROC curves, ``{label: (fpr, tpr, auc)}``; a class of ``labels`` without one
    (no faces of it in the data) is named above the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}: one-vs-rest ROC" if title else "one-vs-rest ROC")
    missing = [label for label in labels if label not in curves]
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    else:  # one class only: a one-vs-rest ROC needs positives and negatives
        ax.text(0.5, 0.5, "no class has both positives and negatives", ha="center")
    if curves and missing:  # with 2+ curves, a class without one has no faces in the data
        ax.text(0.98, 0.4, f"no curve for {', '.join(missing)}: no faces in the data",
                ha="right", fontsize=8, transform=ax.transAxes)  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def benchmark_plot(report: dict, path: str | Path) -> Path:
    """Accuracy against file size and against single-face latency (1 thread), log scales."""
    plt = pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    t = str(report["settings"]["threads"][0])
    colours = {}
    markers = ["o", "s", "^", "D", "v"]
    runtimes = list(dict.fromkeys(r["runtime"].split(" ")[0] for r in report["models"]))
    named = set()
    for r in report["models"]:
        colour = colours.setdefault(r["model"], f"C{len(colours) % 10}")
        runtime = r["runtime"].split(" ")[0]
        marker = markers[runtimes.index(runtime) % len(markers)]
        acc = 100 * r["accuracy"]
        size = r["size_bytes"] / 1024
        lat = r["latency_ms"].get(t, {}).get("median")
        first = r["model"] not in named
        named.add(r["model"])
        axes[0].scatter(size, acc, color=colour, marker=marker, s=55)
        if lat is not None:
            axes[1].scatter(
                lat, acc, color=colour, marker=marker, s=55, label=f"{r['name']} ({runtime})"
            )
        if first:
            for ax, xv in ((axes[0], size), (axes[1], lat)):
                if xv is not None:
                    ax.annotate(
                        r["name"], (xv, acc), fontsize=8, xytext=(5, 5), textcoords="offset points"
                    )
    axes[0].set_xlabel("file size (KiB)")
    axes[1].set_xlabel(f"single-face latency, {t} thread, median (ms)")
    for ax in axes:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel(f"accuracy on {report['split']} (%)")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"DeepFER: accuracy against size and latency ({report['n']:,} {report['split']} faces)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
