"""``deepfer demo``: try DeepFER in the browser (Gradio, the ``demo`` extra).

Upload a photo or take one with the browser's webcam; the page shows the photo with boxes
and labels (``drawing.py``), the seven scores of each face as bars, a table of the faces,
and which model, runtime and detector ran. It uses the edge runtime (TFLite, no
TensorFlow) through :class:`~deepfer.edge.recognizer.EmotionRecognizer`, which searches photos
as ``deepfer detect`` does, so the page and the command find the same faces.

Nothing is stored: photos are analysed in memory. The server binds to 127.0.0.1 unless
``--host`` says otherwise (a photo of a face is personal data).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import cv2
import numpy as np

from deepfer.edge.config import Config
from deepfer.edge.detectors import PHOTO_DETECT_WIDTH
from deepfer.edge.drawing import PALETTE, draw_faces
from deepfer.edge.errors import DeepFERError
from deepfer.edge.pipeline import Face
from deepfer.edge.recognizer import EmotionRecognizer

log = logging.getLogger(__name__)

TABLE_HEADERS = ["face", "emotion", "score", "x", "y", "w", "h"]


class DemoUnavailable(DeepFERError):
    """The ``demo`` extra (gradio, matplotlib) is not installed."""


def _import(name: str):
    # no usage statistics sent anywhere (set before gradio is first imported)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        return __import__(name)
    except ImportError:
        raise DemoUnavailable(
            f'deepfer demo needs the demo extra ({name} is not installed): pip install "deepfer[demo]"'
        ) from None


class DemoAnalyser:
    """Photo in, everything the page shows out. One classifier; calls are serialised (one
    TFLite interpreter is not shared between threads)."""

    def __init__(self, config: Config, detect_width: int = PHOTO_DETECT_WIDTH):
        self.recognizer = EmotionRecognizer(
            config=config, settings={"detector.detect_width": detect_width}
        )
        self._lock = threading.Lock()

    def describe(self) -> str:
        c = self.recognizer.classifier
        h, w = c.input_size
        detector = self.recognizer.detector
        return (
            f"model **{c.info.name}** ({c.input_dtype} input {w}x{h}, {len(c.labels)} labels, "
            f"trained on {c.info.trained_on}) · runtime **{c.runtime}** · detector "
            f"**{detector.name}** ({repr(detector).strip('<>')})"
        )

    def faces(self, rgb: np.ndarray) -> tuple[list[Face], float]:
        """Faces of an RGB photo (as the browser sends it) and the milliseconds it took."""
        bgr = cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)
        t0 = time.perf_counter()
        with self._lock:
            faces = self.recognizer.detect(bgr)
        faces.sort(key=lambda f: (f.box[0], f.box[1]))  # numbered left to right
        return faces, (time.perf_counter() - t0) * 1e3

    def analyse(self, rgb: np.ndarray | None) -> tuple[Any, Any, list[list[Any]], str]:
        """(annotated RGB photo, score chart RGB image, table rows, text) for the page."""
        if rgb is None:
            return None, None, [], "Upload a photo or take one with the webcam."
        if rgb.ndim == 3 and rgb.shape[2] == 4:
            rgb = rgb[..., :3]
        faces, ms = self.faces(rgb)
        bgr = cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)
        labels = [f"{i + 1}: {f.emotion} {f.score:.0%}" for i, f in enumerate(faces)]
        annotated = cv2.cvtColor(draw_faces(bgr, faces, labels), cv2.COLOR_BGR2RGB)
        rows = [
            [i + 1, f.emotion, round(f.score, 3), *(int(v) for v in f.box)]
            for i, f in enumerate(faces)
        ]
        n = len(faces)
        text = (
            f"**{n} face{'s' if n != 1 else ''}** in {ms:.0f} ms "
            f"({rgb.shape[1]}x{rgb.shape[0]} photo). {self.describe()}"
        )
        return annotated, score_chart(faces, self.recognizer.labels), rows, text


def score_chart(faces: list[Face], labels: list[str], max_faces: int = 12) -> np.ndarray | None:
    """The seven scores of each face as bars (one small panel per face), as an RGB image."""
    if not faces:
        return None
    _import("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = faces[:max_faces]
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(3.4 * cols, 2.4 * rows), dpi=90)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors = [tuple(c / 255 for c in PALETTE.get(k, (255, 255, 255))[::-1]) for k in labels]
    for i, ax in enumerate(axes.flat):
        if i >= len(shown):
            ax.axis("off")
            continue
        face = shown[i]
        ax.bar(range(len(labels)), [face.scores.get(k, 0.0) for k in labels], color=colors)
        ax.set_xticks(range(len(labels)), [k[:4] for k in labels], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"face {i + 1}: {face.emotion} {face.score:.0%}", fontsize=10)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def build_demo(analyser: DemoAnalyser):
    """The Gradio page (``gr.Blocks``)."""
    gr = _import("gradio")
    with gr.Blocks(title="DeepFER demo", analytics_enabled=False) as demo:
        gr.Markdown(
            "# DeepFER: facial emotion recognition\n"
            "Upload a photo or take one with your webcam. Faces are found and their emotion "
            "(angry, disgust, fear, happy, neutral, sad, surprise) is recognised on this "
            "computer with the edge runtime; nothing is stored."
        )
        with gr.Row():
            photo = gr.Image(
                label="photo", sources=["upload", "webcam"], type="numpy", elem_id="photo"
            )
            annotated = gr.Image(label="faces", type="numpy", interactive=False, elem_id="faces")
        info = gr.Markdown(analyser.describe(), elem_id="info")
        with gr.Row():
            chart = gr.Image(label="scores per face", interactive=False, elem_id="chart")
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                label="faces",
                interactive=False,
                elem_id="table",
            )
        photo.change(analyser.analyse, photo, [annotated, chart, table, info])
    return demo


def serve(config: Config, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Builds the analyser (a bad model is fatal here, before any server starts) and serves."""
    _import("gradio")
    _import("matplotlib")
    analyser = DemoAnalyser(config)
    demo = build_demo(analyser)
    print(f"deepfer demo: http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    try:
        demo.launch(server_name=host, server_port=port, share=False, show_error=True)
    except OSError as exc:
        raise DeepFERError(f"demo: cannot listen on {host}:{port} ({exc})") from None
