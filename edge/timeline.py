"""``deepfer detect --plot FILE.png``: each track's emotion over time (matplotlib, optional).

One row per track, coloured by its (debounced) emotion along the time axis, in the colours
the boxes are drawn in. matplotlib is imported only here, when a plot is asked for; without
it the error says how to get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfer.edge.drawing import PALETTE, UNKNOWN_COLOR
from deepfer.edge.errors import OutputError
from deepfer.edge.recording import TrackSummary


def _rgb(emotion: str) -> tuple[float, float, float]:
    b, g, r = PALETTE.get(emotion, UNKNOWN_COLOR)
    return (r / 255.0, g / 255.0, b / 255.0)


def import_figure():
    """matplotlib's :class:`~matplotlib.figure.Figure` (no pyplot: no global backend is
    chosen or changed), or an OutputError saying how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise OutputError(
            "--plot needs matplotlib, which is not installed: pip install matplotlib "
            '(or pip install "deepfer[demo]")'
        ) from None
    return Figure


def plot_timeline(
    tracks: Sequence[TrackSummary],
    path: Path,
    labels: Sequence[str],
    frame_s: float = 1 / 30,
    title: str = "Emotion per track over time",
) -> Path:
    """Draws ``tracks``' segments to ``path`` (PNG, SVG or PDF by extension)."""
    Figure = import_figure()
    from matplotlib.patches import Patch

    inputs = {t.input for t in tracks}
    names = [
        (f"{Path(t.input).name} #{t.track_id}" if len(inputs) > 1 else f"track #{t.track_id}")
        for t in tracks
    ]
    height = max(2.2, 0.45 * len(tracks) + 1.4)
    fig = Figure(figsize=(10, height), dpi=100)
    ax = fig.subplots()
    for row, track in enumerate(tracks):
        bars = [(t0, max(t1 - t0, 0.0) + frame_s) for _, t0, t1 in track.segments]
        colors = [_rgb(emotion) for emotion, _, _ in track.segments]
        ax.broken_barh(bars, (row - 0.35, 0.7), facecolors=colors, edgecolor="none")
    ax.set_yticks(range(len(tracks)), names)
    ax.set_ylim(max(len(tracks), 1) - 0.5, -0.5)  # (no tracks: one empty row)
    ax.set_xlabel("time (s)")
    ax.set_title(title if tracks else title + " (no faces)")
    ax.grid(axis="x", alpha=0.3)
    seen = [k for k in labels if any(k == s[0] for t in tracks for s in t.segments)]
    handles = [Patch(color=_rgb(k), label=k) for k in seen or labels]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: could not write the plot ({exc})") from None
    return path
