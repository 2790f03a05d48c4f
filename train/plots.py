"""PNG plots for training and evaluation (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Loss and accuracy per epoch, training against validation, plus the LR."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    style = {"marker": "o", "markersize": 3}  # a one-epoch run still shows its points
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if key in history:
            ax.plot(epochs, history[key], label="train", **style)
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation", **style)
        ax.set_title(title)
        ax.legend()
    val_acc = history.get("val_accuracy")
    if val_acc is not None and len(val_acc) == len(epochs) and len(epochs):
        best = int(np.argmax(val_acc))
        axes[1].axvline(epochs[best], color="gray", ls=":", lw=1)
        axes[1].set_title(f"accuracy (best validation {val_acc[best]:.1%}, epoch {best + 1})")
    if "learning_rate" in history:
        lr = history["learning_rate"]  # may be shorter: logged only from some epoch on
        axes[2].plot(epochs[len(epochs) - len(lr) :], lr, **style)
        axes[2].set_yscale("log")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if 0 < len(epochs) <= 20:
            ax.set_xticks(epochs)
            ax.set_xlim(0.5, len(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def class_distribution(counts: Mapping[str, Mapping[str, int]], path: str | Path) -> Path:
    """Bar chart of faces per class for each split."""
    plt = _plt()
    splits = list(counts)
    labels = list(next(iter(counts.values())).keys()) if counts else []
    width = 0.8 / max(len(splits), 1)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, split in enumerate(splits):
        values = [counts[split][k] for k in labels]
        xs = np.arange(len(labels)) + i * width
        bars = ax.bar(xs, values, width, label=f"{split} ({sum(values)})")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(np.arange(len(labels)) + width * (len(splits) - 1) / 2, labels)
    ax.set_ylabel("faces")
    ax.set_title("class balance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def confusion_matrix(
    cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Counts and row-normalised confusion matrices side by side."""
    plt = _plt()
    cm = np.asarray(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    norm = np.nan_to_num(norm)
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, mat, name, fmt in (
        (axes[0], cm, "counts", "d"),
        (axes[1], norm, "row-normalised", ".2f"),
    ):
        im = ax.imshow(mat, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {name}" if title else name)
        threshold = mat.max() / 2 if mat.size else 0
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(
                    j,
                    i,
                    format(mat[i, j], fmt),
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
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path, title: str = ""
) -> Path:
    """One-vs-rest ROC curves, ``{label: (fpr, tpr, auc)}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}: one-vs-rest ROC" if title else "one-vs-rest ROC")
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    else:  # one class only: a one-vs-rest ROC needs positives and negatives
        ax.text(0.5, 0.5, "no class has both positives and negatives", ha="center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
