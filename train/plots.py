"""PNG plots of a training run: learning curves and class balance (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from deepfer.evaluate.plots import pyplot as _plt


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
