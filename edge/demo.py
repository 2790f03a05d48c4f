"""``deepfer demo``: try DeepFER in the browser (Gradio, the ``demo`` extra).

Upload a photo or take one with the browser's webcam; the page shows the photo with boxes
and labels (``drawing.py``), the seven scores of each face as bars, a table of the faces,
and which model, runtime and detector ran. It uses the edge runtime (TFLite, no
TensorFlow) through :class:`~deepfer.edge.recognizer.EmotionRecognizer`, which searches photos
as ``deepfer detect`` does, so the page and the command find the same faces.

Photos are read as ``deepfer detect`` reads them (OpenCV, the file's orientation tag applied,
the same messages for files it cannot read). Gradio keeps each upload and each picture it
sends back as a file: here they live in a private folder of this process (mode 0700, not
Gradio's shared ``/tmp/gradio``), each deleted a minute after it was made, and the folder
when the server stops (Ctrl-C or SIGTERM). The server binds to 127.0.0.1 unless ``--host``
says otherwise (a photo of a face is personal data), and warns when it does.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfer.edge.capture.imagefile import cut_short, load_image, unreadable_photo
from deepfer.edge.config import Config
from deepfer.edge.detectors import PHOTO_DETECT_WIDTH
from deepfer.edge.drawing import PALETTE, draw_faces
from deepfer.edge.errors import DeepFERError, InputError
from deepfer.edge.netaddr import is_loopback
from deepfer.edge.pipeline import Face
from deepfer.edge.recognizer import EmotionRecognizer

log = logging.getLogger(__name__)

TABLE_HEADERS = ["face", "emotion", "score", "x", "y", "w", "h"]
#: Photos with more pixels are refused before they are decoded (a small PNG can unpack to
#: gigabytes); a 108-megapixel phone photo still fits.
MAX_PIXELS = 120_000_000
#: Uploads larger than this are refused by the page before they are sent.
MAX_UPLOAD = "50mb"
#: The annotated photo sent back to the browser is shrunk to this many pixels on its longer
#: side (boxes and the table stay in the photo's own pixels): a 8000x8000 photo would take
#: seconds to encode and send, and WebP, Gradio's format, stops at 16383 pixels a side.
SHOWN_MAX_SIDE = 2048
#: Seconds Gradio keeps an upload or a picture it sent before deleting it.
CACHE_AGE_S = 60
#: Charts are drawn for this many faces at most (the table lists every face).
CHART_FACES = 12


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
        self._count_lock = threading.Lock()
        self._active = 0  # analyse() calls under way

    def describe(self) -> str:
        c = self.recognizer.classifier
        h, w = c.input_size
        detector = self.recognizer.detector
        return (
            f"model **{c.info.name}** ({c.input_dtype} input {w}x{h}, {len(c.labels)} labels, "
            f"trained on {c.info.trained_on}) · runtime **{c.runtime}** · detector "
            f"**{detector.name}** ({repr(detector).strip('<>')})"
        )

    @property
    def busy(self) -> bool:
        """Whether a photo is being analysed now."""
        with self._count_lock:
            return self._active > 0

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no photo is being analysed (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def faces(self, bgr: np.ndarray) -> tuple[list[Face], float]:
        """Faces of a BGR photo and the milliseconds it took."""
        t0 = time.perf_counter()
        with self._lock:
            faces = self.recognizer.detect(bgr)
        faces.sort(key=lambda f: (f.box[0], f.box[1]))  # numbered left to right
        return faces, (time.perf_counter() - t0) * 1e3

    def analyse(self, photo: Any) -> tuple[Any, Any, list[list[Any]], str]:
        """(annotated RGB photo, score chart RGB image, table rows, text) for the page.

        ``photo``: what the page sends (Gradio's file data: a mapping with ``path``, or a
        ``data:`` URL), a file path, an RGB array, or None. A file that cannot be read as a
        photo gives no pictures and says why in the text (:class:`InputError` is not raised).
        """
        if photo is None:
            return None, None, [], "Upload a photo or take one with the webcam."
        with self._count_lock:
            self._active += 1
        try:
            return self._analyse(photo)
        finally:
            with self._count_lock:
                self._active -= 1

    def _analyse(self, photo: Any) -> tuple[Any, Any, list[list[Any]], str]:
        try:
            bgr, name, notes = read_photo(photo)
        except InputError as exc:
            return None, None, [], f"**Cannot use this photo.** {exc}"
        faces, ms = self.faces(bgr)
        labels = [f"{i + 1}: {f.emotion} {f.score:.0%}" for i, f in enumerate(faces)]
        annotated = draw_faces(bgr, faces, labels)
        h, w = bgr.shape[:2]
        if max(h, w) > SHOWN_MAX_SIDE:
            scale = SHOWN_MAX_SIDE / max(h, w)
            size = (max(round(w * scale), 1), max(round(h * scale), 1))
            annotated = cv2.resize(annotated, size, interpolation=cv2.INTER_AREA)
            notes.append(f"shown at {size[0]}x{size[1]}; boxes are in the photo's pixels")
        rows = [
            [i + 1, f.emotion, round(f.score, 3), *(int(v) for v in f.box)]
            for i, f in enumerate(faces)
        ]
        n = len(faces)
        if n > CHART_FACES:
            notes.append(f"the chart shows the first {CHART_FACES} faces, the table all {n}")
        what = f"{w}x{h} photo" + (f" {name}" if name else "")
        text = f"**{n} face{'s' if n != 1 else ''}** in {ms:.0f} ms ({what}). " + "".join(
            f"Note: {note}. " for note in notes
        )
        chart = score_chart(faces, self.recognizer.labels, CHART_FACES)
        return cv2.cvtColor(annotated, cv2.COLOR_BGR2RGB), chart, rows, text + self.describe()


def read_photo(photo: Any) -> tuple[np.ndarray, str, list[str]]:
    """``(BGR image, file name, notes)`` of what the page sent, read as ``deepfer detect``
    reads a file; :class:`InputError` saying why not, naming the file as the user knows it
    (never the server's copy)."""
    if isinstance(photo, np.ndarray):  # an RGB array (Python callers)
        array = np.asarray(photo)
        if array.ndim == 2:
            array = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
            raise InputError(f"expected an RGB picture, got an array of {array.shape}")
        return cv2.cvtColor(array[..., :3], cv2.COLOR_RGB2BGR), "", []
    if isinstance(photo, Mapping):
        path, name, url = photo.get("path"), photo.get("orig_name"), photo.get("url") or ""
        if not path and url.startswith("data:"):  # a picture sent inline (base64)
            return _decode_data_url(url), name or "", []
    else:
        path, name = photo, None
    if not path:
        raise InputError("the page sent no file")
    path = Path(path)
    name = name or path.name
    try:
        _check_pixels(path, name)
        bgr = load_image(path)
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), name)) from None
    notes = []
    with contextlib.suppress(OSError):
        if cut_short(path.read_bytes()):
            notes.append(
                "the file is cut short (an interrupted download or copy?): the picture below "
                "the cut is grey and no face is found there"
            )
    return bgr, name, notes


def _check_pixels(path: Path, name: str) -> None:
    """Refuses a picture of more than :data:`MAX_PIXELS` from its header, before decoding."""
    if unreadable_photo(path):
        return  # load_image says what to do
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover (gradio needs Pillow)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
        size = f"{w}x{h} is {w * h / 1e6:.0f} megapixels"
    except Image.DecompressionBombError:  # Pillow's own limit, above ours
        w, h, size = MAX_PIXELS + 1, 1, "far too many pixels"
    except Exception:
        return  # not a picture Pillow knows: load_image says why
    if w * h > MAX_PIXELS:
        raise InputError(
            f"{name}: {size}; the demo takes photos of up to {MAX_PIXELS / 1e6:.0f} "
            "megapixels (`deepfer detect` reads larger ones)"
        )


def _decode_data_url(url: str) -> np.ndarray:
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=False)
    except (IndexError, ValueError):
        data = b""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise InputError("the picture the page sent cannot be decoded")
    return image


def score_chart(
    faces: list[Face], labels: list[str], max_faces: int = CHART_FACES
) -> np.ndarray | None:
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

    def on_photo(photo: Any):
        annotated, chart, rows, text = analyser.analyse(photo)
        if photo is not None and annotated is None:  # the photo could not be used: say why
            gr.Warning(text.replace("**", ""))
        return annotated, chart, rows, text

    # Gradio keeps uploads and the pictures it sends back as files: each is deleted
    # CACHE_AGE_S after it was made (checked every 15 s), and all of them at shutdown.
    with gr.Blocks(
        title="DeepFER demo", analytics_enabled=False, delete_cache=(15, CACHE_AGE_S)
    ) as demo:
        gr.Markdown(
            "# DeepFER: facial emotion recognition\n"
            "Upload a photo or take one with your webcam. Faces are found and their emotion "
            "(angry, disgust, fear, happy, neutral, sad, surprise) is recognised on this "
            "computer with the edge runtime; photos are deleted within a minute or two, and "
            "nothing is kept when the demo stops."
        )
        with gr.Row():
            photo = gr.Image(
                label="photo", sources=["upload", "webcam"], type="filepath", elem_id="photo"
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
        # preprocess=False: the handler gets the uploaded file as Gradio stored it and reads
        # it as `deepfer detect` does (Gradio's own reading refuses some photos with a
        # message about its internals, and reads 16-bit PNGs as white)
        photo.change(on_photo, photo, [annotated, chart, table, info], preprocess=False)
    return demo


def serve(config: Config, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Builds the analyser (a bad model is fatal here, before any server starts) and serves
    until Ctrl-C or SIGTERM (``port`` 0: a free port, the address printed is the real one);
    Gradio's files live in a private temporary folder, removed at the end."""
    if not 0 <= port <= 65535:
        raise DeepFERError(f"demo: --port {port}: must be 0..65535")
    _check_port(host, port)  # before seconds of imports and model loading
    previous = os.environ.get("GRADIO_TEMP_DIR")
    cache = tempfile.mkdtemp(prefix="deepfer-demo-")  # mode 0700: this user only
    os.environ["GRADIO_TEMP_DIR"] = cache  # read by Gradio when the page and server are made
    try:
        _import("gradio")
        _import("matplotlib")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's calls to itself
        analyser = DemoAnalyser(config)
        demo = build_demo(analyser)
        if port == 0:  # any free port: chosen here, as Gradio would wait on port 0 itself
            port = _check_port(host, 0)  # (just before the launch: another may take it)
        local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        url = f"http://{f'[{local}]' if ':' in local else local}:{port}/"
        if not is_loopback(host):
            log.warning(
                "demo listening on %s port %d: anyone who can reach this machine can open the "
                "page and see the photos and webcam pictures analysed there, faces included; "
                "use the default 127.0.0.1 unless this network is trusted",
                host,
                port,
            )
        print(f"deepfer demo: {url}  (Ctrl-C to stop)", flush=True)
        with _interrupts(analyser):
            try:
                demo.launch(
                    server_name=host,
                    server_port=port,
                    share=False,
                    show_error=True,
                    quiet=True,
                    max_file_size=MAX_UPLOAD,
                )
            except KeyboardInterrupt:  # before Gradio's own wait caught it: the server
                demo.close()  # already answers while launch() finishes its start-up
            # the server has stopped; a photo still being analysed (in one of Gradio's
            # daemon threads) is let finish: the runtime aborts if the process ends under it
            analyser.wait_idle(60)
    except OSError as exc:
        raise DeepFERError(f"demo: cannot listen on {host}:{port} ({exc})") from None
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


def _check_port(host: str, port: int) -> int:
    """The port, bound once and let go (for 0, the free one the system gave): a clear error
    for a port in use or an address this machine does not have (Gradio's own names its Python
    parameters and environment variables)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            return sock.getsockname()[1]
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DeepFERError(
            f"demo: cannot listen on {host}:{port}: {reason} (choose another with --port or --host)"
        ) from None


@contextlib.contextmanager
def _interrupts(analyser: DemoAnalyser):
    """Ctrl-C and SIGTERM (systemd, docker stop, kill) both stop the server as Gradio stops
    it on Ctrl-C, so that the private folder is removed (Python's default would end the
    process on SIGTERM on the spot); while a photo is being analysed, which cannot be cut
    short, the user is told why the exit waits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        if analyser.busy:
            print(
                "deepfer demo: stopping once the photo being analysed is done "
                "(Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
