"""Frame sources and the capture loop.

A :class:`Source` opens, reads :class:`Frame` objects and closes. Cameras and network
streams are *live*: when one fails, :class:`FrameReader` closes it and reopens it with
exponential backoff while the process stays up. Files end the run at their end (or
start again with ``loop``), as fast as possible or at their own rate (``realtime``).

The Pi camera (picamera2) is read through its low-resolution YUV420 stream: faces are
looked for in that stream's Y plane (already grayscale, no conversion), and the main
stream is captured only when something needs it (a face crop, the preview, drawing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.preprocess import to_gray

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(RuntimeError):
    """A source that cannot be opened or is not understood, with what and why."""


@dataclass(eq=False)
class Frame:
    """One frame: the grayscale plane faces are looked for in, and the colour image.

    ``gray`` may be smaller than the frame (picamera2's lores stream): ``scale`` maps its
    pixels to frame pixels. Boxes reported by the pipeline are always in frame pixels.
    """

    gray: np.ndarray
    size: tuple[int, int]  # frame (width, height)
    index: int = 0
    t: float = 0.0  # stream time, seconds (position in a file; since start for a camera)
    ts: float = 0.0  # wall clock, time.time()
    image: np.ndarray | None = None  # BGR, when already at hand
    loader: Callable[[], np.ndarray] | None = None  # fetches the BGR image when needed

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per ``gray`` pixel, (x, y)."""
        return self.size[0] / self.gray.shape[1], self.size[1] / self.gray.shape[0]

    def bgr(self) -> np.ndarray:
        """The colour frame (captured now if the source deferred it)."""
        if self.image is None:
            if self.loader is None:
                self.image = cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)
            else:
                image = self.loader()
                if image.ndim == 3 and image.shape[2] == 4:
                    image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
                if (image.shape[1], image.shape[0]) != self.size:
                    image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
                self.image = image
        return self.image

    def crop_plane(self) -> np.ndarray:
        """Grayscale at frame resolution, for face crops."""
        if (self.gray.shape[1], self.gray.shape[0]) == self.size:
            return self.gray
        return to_gray(self.bgr())


def frame_from_image(image: np.ndarray, index: int = 0, t: float = 0.0) -> Frame:
    """A Frame from a BGR (or gray/BGRA) image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    gray = to_gray(image)
    bgr = image if image.ndim == 3 else None
    return Frame(
        gray=gray, size=(gray.shape[1], gray.shape[0]), index=index, t=t, ts=time.time(), image=bgr
    )


class Source:
    """Base class: ``open()``, ``read()`` -> Frame or None, ``close()``.

    ``read()`` returns None at the end of a file, or when a live source fails (the
    capture loop then reopens it). ``t`` and ``index`` are filled in by the loop.
    """

    name = "source"
    live = False
    #: The source's own frame rate (files), for --realtime; None when unknown.
    fps: float | None = None

    def open(self) -> None:
        """Raises SourceError when the source cannot be opened."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def rewind(self) -> None:
        """Start a file again (for ``loop``)."""
        self.close()
        self.open()

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class OpenCVSource(Source):
    """A USB/V4L2 camera (integer index), a video file or an RTSP/HTTP stream via OpenCV."""

    def __init__(
        self,
        target: int | str,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        live: bool | None = None,
    ):
        self.target = target
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.live = isinstance(target, int) or str(target).startswith(STREAM_SCHEMES)
        if live is not None:
            self.live = live
        self.width, self.height, self.want_fps = width, height, fps
        self.cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if isinstance(self.target, int):
                raise SourceError(
                    f"camera {self.target}: cannot open it (is it plugged in, and may this user "
                    "read /dev/video*? try another index)"
                )
            what = "stream" if self.live else "video file"
            raise SourceError(f"{self.target}: cannot open it as a {what} (OpenCV/FFmpeg)")
        if isinstance(self.target, int):
            if self.width and self.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.want_fps:
                cap.set(cv2.CAP_PROP_FPS, self.want_fps)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self.cap = cap

    def read(self) -> Frame | None:
        if self.cap is None:
            return None
        ok, image = self.cap.read()
        if not ok or image is None:
            return None
        return frame_from_image(image)

    def rewind(self) -> None:
        if self.cap is not None and self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return
        super().rewind()

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageFolderSource(Source):
    """The images of a folder in name order (or a list of image files), one frame each.

    An unreadable image is skipped with a warning; it does not end the run.
    """

    def __init__(self, paths: list[Path], name: str, fps: float = 0.0):
        self.paths = list(paths)
        self.name = name
        self.fps = fps or None
        self._next = 0

    @classmethod
    def from_folder(cls, folder: Path, fps: float = 0.0) -> ImageFolderSource:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise SourceError(
                f"{folder}: no images in this folder (looked for {', '.join(IMAGE_EXTS)})"
            )
        return cls(paths, str(folder), fps)

    def open(self) -> None:
        self._next = 0

    def read(self) -> Frame | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot read this image, skipped", path)
                continue
            return frame_from_image(image)
        return None


class Picamera2Source(Source):
    """The Raspberry Pi camera through picamera2.

    Configured with a main stream (``width`` x ``height``, RGB888: BGR bytes, as OpenCV
    wants) and a lores stream (YUV420) whose Y plane is the frame's ``gray``. The main
    stream is captured only when :meth:`Frame.bgr` is called.
    """

    name = "picamera2"
    live = True

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        lores_width: int = 320,
        lores_height: int = 240,
        fps: float = 0.0,
    ):
        self.size = (width or 640, height or 480)
        lores = (lores_width or 320, lores_height or 240)
        # lores can be no larger than main; keep it even (YUV420)
        self.lores = (min(lores[0], self.size[0]) // 2 * 2, min(lores[1], self.size[1]) // 2 * 2)
        self.want_fps = fps
        self.cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"picamera2 is not installed ({exc}): on Raspberry Pi OS run "
                "`sudo apt install python3-picamera2` and make the venv with "
                "--system-site-packages (deploy/install.sh does both)"
            ) from None
        cam = None
        try:
            cam = Picamera2()
            kwargs = {}
            if self.want_fps:
                kwargs["controls"] = {"FrameRate": float(self.want_fps)}
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"},
                lores={"size": self.lores, "format": "YUV420"},
                **kwargs,
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # picamera2 raises many kinds (IndexError: no camera...)
            if cam is not None:
                _quietly(cam.close)
            raise SourceError(f"picamera2: cannot start the camera ({exc!r})") from None
        self.cam = cam

    def read(self) -> Frame | None:
        if self.cam is None:
            return None
        cam = self.cam
        yuv = cam.capture_array("lores")
        lw, lh = self.lores
        gray = np.ascontiguousarray(yuv[:lh, :lw])  # Y plane of YUV420 (rows may be padded)
        return Frame(gray=gray, size=self.size, loader=lambda: cam.capture_array("main"))

    def close(self) -> None:
        cam, self.cam = self.cam, None
        if cam is not None:
            _quietly(cam.stop)
            _quietly(cam.close)


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:  # closing a failed camera must not hide the first error
        log.debug("ignored while closing: %r", exc)


def picamera2_available() -> bool:
    try:
        import picamera2  # noqa: F401
    except Exception:  # ImportError, or a broken libcamera install
        return False
    return True


def make_source(spec: str, config=None) -> Source:
    """A source from ``--source`` (``auto``, ``picamera2``, ``0``, a file, folder or URL).

    ``config`` is a :class:`deepfer.edge.config.SourceConfig` (camera sizes); raises
    SourceError for something that is none of these.
    """
    from deepfer.edge.config import SourceConfig

    cfg = config or SourceConfig()
    spec = str(spec).strip()
    camera = {"width": cfg.width, "height": cfg.height, "fps": cfg.fps}
    if spec == "auto":
        if picamera2_available():
            log.info("source auto: picamera2 imports, using the Pi camera")
            spec = "picamera2"
        else:
            log.info("source auto: no picamera2, using camera 0")
            spec = "0"
    if spec == "picamera2":
        return Picamera2Source(cfg.width, cfg.height, cfg.lores_width, cfg.lores_height, cfg.fps)
    if spec.isdigit():
        return OpenCVSource(int(spec), **camera)
    if spec.lower().startswith(STREAM_SCHEMES):
        return OpenCVSource(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource.from_folder(path, cfg.fps)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTS:
            return ImageFolderSource([path], str(path), cfg.fps)
        return OpenCVSource(str(path), live=False)
    raise SourceError(
        f"unknown source {spec!r}: not auto, picamera2, a camera index (0, 1...), an "
        "rtsp:// or http(s):// URL, or an existing video file, image or folder"
    )


class FrameReader:
    """The capture loop: frames from a source, with reopen-on-failure, looping and pacing.

    Iterate it for frames. ``stop()`` (from a signal handler or another thread) ends the
    iteration, also while it waits to reopen a camera. ``reopens`` counts reopen attempts;
    ``on_failure`` is called (on the iterating thread) each time a live source fails.
    """

    def __init__(
        self,
        source: Source,
        realtime: bool = False,
        loop: bool = False,
        reopen_min_s: float = 0.5,
        reopen_max_s: float = 30.0,
        stop_event: threading.Event | None = None,
        on_failure: Callable[[], None] | None = None,
    ):
        self.source = source
        self.on_failure = on_failure
        self.realtime = realtime
        self.loop = loop
        self.reopen_min_s = reopen_min_s
        self.reopen_max_s = reopen_max_s
        self.stop_event = stop_event or threading.Event()
        self.reopens = 0
        self.failures = 0
        self.opened = False

    def stop(self) -> None:
        self.stop_event.set()

    def open(self) -> None:
        """Open the source once; the first failure is fatal (SourceError)."""
        if not self.opened:
            self.source.open()
            self.opened = True

    def _reopen(self) -> bool:
        """Close and reopen a live source, backing off; False if stopped meanwhile."""
        self.failures += 1
        _quietly(self.source.close)
        if self.on_failure is not None:
            self.on_failure()  # e.g. end the open tracks: nobody can be followed meanwhile
        delay = self.reopen_min_s
        while not self.stop_event.is_set():
            log.warning("%s: no frames; reopening in %.1f s", self.source.name, delay)
            if self.stop_event.wait(delay):
                return False
            self.reopens += 1
            try:
                self.source.open()
            except Exception as exc:
                log.warning("%s: reopen failed: %s", self.source.name, exc)
                delay = min(delay * 2.0, self.reopen_max_s)
                continue
            log.warning("%s: reopened", self.source.name)
            return True
        return False

    def _read(self) -> Frame | None:
        try:
            return self.source.read()
        except Exception as exc:
            if not self.source.live:
                raise SourceError(f"{self.source.name}: read failed ({exc})") from exc
            log.warning("%s: read failed: %r", self.source.name, exc)
            return None

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        src = self.source
        index = 0
        offset = 0.0  # stream time of the current pass through a looped file
        in_pass = 0  # frames read in the current pass
        start_wall = time.monotonic()
        try:
            while not self.stop_event.is_set():
                frame = self._read()
                if frame is None:
                    if src.live:
                        if not self._reopen():
                            return
                        continue
                    if self.loop and in_pass > 0:
                        offset += in_pass / (src.fps or 30.0)
                        in_pass = 0
                        src.rewind()
                        continue
                    return  # end of file
                if src.live:
                    frame.t = time.monotonic() - start_wall
                else:
                    frame.t = offset + in_pass / (src.fps or 30.0)
                    if self.realtime and src.fps:
                        delay = start_wall + frame.t - time.monotonic()
                        if delay > 0 and self.stop_event.wait(delay):
                            return
                in_pass += 1
                frame.index = index
                frame.ts = time.time()
                index += 1
                yield frame
        finally:
            _quietly(src.close)
