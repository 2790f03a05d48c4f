"""Frame sources: cameras (OpenCV, picamera2), video files, streams, photos and image folders.

A :class:`Source` opens, reads :class:`~deepfer.edge.capture.frame.Frame` objects and
closes; ``live`` sources (cameras, streams) are reopened by the capture loop
(``reader.py``) when they fail. :func:`make_source` reads ``--source``; a file is a photo or
a video as ``deepfer detect`` tells them apart (``inputs.py``: a JPEG without a suffix or a
still GIF is a photo).

The Pi camera (picamera2) gives two streams of the same camera frame: faces are looked
for in the low-resolution YUV420 stream's Y plane (already grayscale, no conversion), and
the main stream is the colour image for crops, drawing and the preview. Both arrays come
from one ``capture_request()``, so boxes, crops and drawings belong to one moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.capture import picamera2_import
from deepfer.edge.capture.frame import Frame, frame_from_image
from deepfer.edge.capture.imagefile import IMAGE_EXTS, is_hidden, is_photo
from deepfer.edge.capture.inputs import (
    NO_INDEX,
    PHOTO,
    VIDEO_EXTS,
    VideoHeader,
    as_shown,
    follow_rotation_tag,
    input_kind,
    pixel_aspect,
    read_picture,
    shown_size,
    video_header,
)
from deepfer.edge.config.sections import ROTATIONS
from deepfer.edge.errors import InputError, SourceError, SourceUnavailable
from deepfer.edge.netaddr import redact_url
from deepfer.edge.paths import user_path

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class Source:
    """Base class: ``open()``, ``read()`` -> Frame or None, ``close()``.

    ``read()`` returns None at the end of a file, or when a live source fails (the
    capture loop then reopens it). ``t`` and ``index`` are filled in by the loop.
    """

    name = "source"
    live = False
    #: Each frame a separate picture (a folder of photos), not a moving scene.
    stills = False
    #: The source's own frame rate (files), for --realtime and for timing frames that have no
    #: timestamp of their own; None when unknown.
    fps: float | None = None
    _held: Frame | None = None  # what grab() took, for retrieve()

    def open(self) -> None:
        """Raises SourceError when the source cannot be opened."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def grab(self) -> bool:
        """Take the next frame without decoding it where the source can (False where
        :meth:`read` would give None); :meth:`retrieve` then gives it."""
        self._held = self.read()
        return self._held is not None

    def retrieve(self, pixels: bool = True) -> Frame | None:
        """The frame :meth:`grab` took, decoded; ``pixels=False``: without its pixels
        (:meth:`Frame.skipped`) where the source can skip decoding, as is where it cannot."""
        frame, self._held = self._held, None
        return frame

    def position_s(self) -> float | None:
        """Where the frame :meth:`grab` took lies in its file, in seconds from the file's
        start, by the file's own timestamps (a video's container); None where the source has
        none (the capture loop then counts frames at :attr:`fps`). Files only."""
        return None

    def rewind(self) -> None:
        """Start a file again (for ``loop``)."""
        self.close()
        self.open()

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def stated_fps(cap: cv2.VideoCapture) -> float | None:
    """The frame rate a video names, or None: OpenCV's 0 for none, and its 1000 (or more)
    for a container without one (a browser's MediaRecorder WebM: the rate of its
    millisecond timestamps, not of its frames)."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and 0 < fps < 1000 else None


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
        # (a camera's password in its URL stays out of logs, errors and stats)
        self.name = f"camera {target}" if isinstance(target, int) else redact_url(target)
        self.live = isinstance(target, int) or str(target).startswith(STREAM_SCHEMES)
        if live is not None:
            self.live = live
        self.width, self.height, self.want_fps = width, height, fps
        self.cap: cv2.VideoCapture | None = None
        self._size = (0, 0)  # of the frames, for frames taken without their pixels
        self._shown: tuple[int, int] | None = None  # a file of non-square pixels: as shown
        self._mirror: tuple[int, int, int, int] | None = None  # a mirroring display matrix
        self._said_cut = False  # a file cut short is warned about once, not each loop

    def open(self) -> None:
        header = VideoHeader()  # a file's: audio only, cut short, a mirroring rotation tag
        if not self.live and isinstance(self.target, str):
            header = video_header(self.target)
            if header.no_video:  # (an MP4 of audio alone: say so, not "cannot")
                raise SourceError(
                    f"{self.name}: {header.no_video}: no pictures to look for faces in"
                )
            if header.cut and header.cut[0] == NO_INDEX:  # (nothing can play it: say so)
                raise SourceError(f"{self.name}: {header.cut[1]}")
        cut = header.cut  # (kind, words) of a file cut short: an interrupted recording or copy
        if self.live:
            cap = cv2.VideoCapture(self.target)
        else:  # a file: one decoding thread costs less CPU per frame than FFmpeg's several,
            # and the capture loop already decodes on its own thread (reader.py)
            cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            cap.release()
            if isinstance(self.target, int):
                raise SourceUnavailable(
                    f"camera {self.target}: cannot open it (is it plugged in, and may this user "
                    "read /dev/video*? try another index)"
                )
            if cut:
                raise SourceError(f"{self.name}: {cut[1]}; FFmpeg cannot open what is left")
            if self.live:  # (a stream's server may be away for now)
                raise SourceUnavailable(f"{self.name}: cannot open it as a stream (OpenCV/FFmpeg)")
            raise SourceError(f"{self.name}: cannot open it as a video file (OpenCV/FFmpeg)")
        if cut and not self._said_cut:
            log.warning("%s: %s; only its frames before the cut are read", self.name, cut[1])
            self._said_cut = True
        if isinstance(self.target, int):
            if self.width and self.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.want_fps:
                cap.set(cv2.CAP_PROP_FPS, self.want_fps)
        # a file's own average rate where its header gives one: what OpenCV 4.9 and later say,
        # and 4.8 does not for a variable rate (VideoHeader.rate)
        self.fps = header.rate or stated_fps(cap)
        self._mirror = header.mirror
        if not isinstance(self.target, int):  # (a file's or stream's tag, turned as players do)
            follow_rotation_tag(cap, bool(self._mirror))
        if self._mirror:  # OpenCV would turn it upside down: shown here as players show it
            log.info("%s: its rotation tag mirrors the picture: shown mirrored", self.name)
        self._size = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self._shown = None if self.live else shown_size(cap, self._size)
        if self._shown:
            log.info(
                "%s: pixels not square (aspect %g): read at %dx%d as players show it, not %dx%d",
                self.name, pixel_aspect(cap), *self._shown, *self._size,
            )  # fmt: skip
            self._size = self._shown
        if self._mirror and self._mirror[0] == 0:  # (a quarter turn)
            self._size = self._size[::-1]
        self.cap = cap

    def read(self) -> Frame | None:
        return self.retrieve() if self.grab() else None

    def grab(self) -> bool:
        return self.cap is not None and bool(self.cap.grab())

    def position_s(self) -> float | None:
        """The grabbed frame's presentation timestamp (FFmpeg: 0 for the first frame, then
        the container's time of each frame, so a variable frame rate is followed; 0 again
        for a frame that has none). The capture loop checks it (reader.py)."""
        if self.live or self.cap is None:
            return None
        return self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def retrieve(self, pixels: bool = True) -> Frame | None:
        """Decoding (FFmpeg's colour conversion; a USB camera's MJPEG) happens here, so a
        frame taken without its pixels costs only the grab."""
        if self.cap is None:
            return None
        if not pixels and all(self._size):
            return Frame.skipped(self._size)
        ok, image = self.cap.retrieve()
        if not ok or image is None:
            return None
        if self._shown and (image.shape[1], image.shape[0]) != self._shown:
            image = cv2.resize(image, self._shown, interpolation=cv2.INTER_LINEAR)
        if self._mirror:
            image = as_shown(image, self._mirror)
        self._size = (image.shape[1], image.shape[0])
        return frame_from_image(image)

    # rewind: the file is opened again (Source.rewind). Seeking to frame 0 says it worked on
    # an MPEG-TS or raw H.264 file and then gives no frame (a looped run would end), and on
    # an MPEG program stream lands a dozen frames in.

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class PhotoSource(Source):
    """One picture file (a photo, or a file of one picture: :mod:`.inputs`): one frame a
    pass. The picture is read when the source opens, so one that cannot be read fails there
    (SourceError, naming the file and why), before any output starts."""

    stills = True

    def __init__(self, path: Path, fps: float = 0.0):
        self.path = Path(path)
        self.name = str(path)
        self.fps = fps or None
        self._frame: Frame | None = None

    def open(self) -> None:
        try:
            self._frame = frame_from_image(read_picture(self.path))
        except InputError as exc:
            raise SourceError(str(exc)) from None

    def read(self) -> Frame | None:
        frame, self._frame = self._frame, None
        return frame


class ImageFolderSource(Source):
    """The images of a folder in name order (or a list of image files), one frame each.

    An unreadable image is skipped with a warning saying why; a pass in which none could be
    read ends the run (SourceError). One file on its own is a :class:`PhotoSource`.
    """

    stills = True

    def __init__(self, paths: list[Path], name: str, fps: float = 0.0):
        self.paths = list(paths)
        self.name = name
        self.fps = fps or None
        self._next = 0
        self._first: Frame | None = None

    @classmethod
    def from_folder(cls, folder: Path, fps: float = 0.0) -> ImageFolderSource:
        """The folder's pictures: its photos by suffix, and the files of a video's suffix that
        hold one picture (a still GIF), as ``deepfer detect FOLDER`` takes them (its videos
        are not frames of this sequence)."""
        paths = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not is_hidden(p)
            and (is_photo(p) or (p.suffix.lower() in VIDEO_EXTS and input_kind(p) == PHOTO))
        )  # fmt: skip
        if not paths:
            raise SourceError(
                f"{folder}: no images in this folder (looked for {', '.join(IMAGE_EXTS)})"
            )
        return cls(paths, str(folder), fps)

    def open(self) -> None:
        """Reads on to the first picture that can be read, so that a folder none of whose
        pictures can be read fails here (SourceError), before any output starts."""
        self._next = 0
        self._first = self._next_picture()
        if self._first is None:
            raise SourceError(f"{self.name}: none of its {len(self.paths)} images can be read")

    def read(self) -> Frame | None:
        frame, self._first = self._first, None
        return frame if frame is not None else self._next_picture()

    def _next_picture(self) -> Frame | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                return frame_from_image(read_picture(path))
            except InputError as exc:
                log.warning("%s; skipped", exc)
        return None


class Picamera2Source(Source):
    """The Raspberry Pi camera through picamera2.

    Configured with a main stream (``width`` x ``height``, RGB888: BGR bytes, as OpenCV
    wants) and a lores stream (YUV420) whose Y plane is the frame's ``gray``. Each frame is
    one ``capture_request()``: both arrays are copied out of it (neither for a frame taken
    without its pixels) and the request is released at once (picamera2 holds few buffers).
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
        self._request = None  # taken by grab(), released by retrieve()

    def open(self) -> None:
        Picamera2 = picamera2_import.import_picamera2()  # noqa: N806 (SourceError: missing, or why broken)
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
                quietly(cam.close)
            raise SourceUnavailable(f"picamera2: cannot start the camera ({exc!r})") from None
        self.cam = cam

    def read(self) -> Frame | None:
        return self.retrieve() if self.grab() else None

    def grab(self) -> bool:
        if self.cam is None:
            return False
        self._release()
        self._request = self.cam.capture_request()
        return True

    def _release(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()

    def retrieve(self, pixels: bool = True) -> Frame | None:
        """Both arrays copied out of the request taken by :meth:`grab` (none when
        ``pixels=False``), and the request released at once."""
        request = self._request
        if request is None:
            return None
        try:
            if not pixels:
                return Frame.skipped(self.size)
            yuv = request.make_array("lores")
            image = request.make_array("main")
        finally:
            self._release()
        lw, lh = self.lores
        gray = np.ascontiguousarray(yuv[:lh, :lw])  # Y plane of YUV420 (rows may be padded)
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        return Frame(gray=gray, size=self.size, image=image)

    def close(self) -> None:
        quietly(self._release)
        cam, self.cam = self.cam, None
        if cam is not None:
            quietly(cam.stop)
            quietly(cam.close)


class RotatedSource(Source):
    """Another source's frames turned upright (``source.rotate``): a camera mounted upside
    down (180) or on its side (90, 270; degrees clockwise). Faces are looked for, cropped,
    drawn and reported in the turned picture."""

    def __init__(self, inner: Source, degrees: int):
        if degrees not in ROTATIONS or degrees == 0:
            raise ValueError(f"rotation {degrees!r}: must be 90, 180 or 270")
        self.inner, self.degrees = inner, degrees

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.inner.name} turned {self.degrees}"

    @property
    def live(self) -> bool:  # type: ignore[override]
        return self.inner.live

    @property
    def stills(self) -> bool:  # type: ignore[override]
        return self.inner.stills

    @property
    def fps(self) -> float | None:  # type: ignore[override]
        return self.inner.fps  # known once the inner source is open

    def _turn(self, frame: Frame | None) -> Frame | None:
        return None if frame is None else frame.rotated(self.degrees)

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Frame | None:
        return self._turn(self.inner.read())

    def grab(self) -> bool:
        return self.inner.grab()

    def retrieve(self, pixels: bool = True) -> Frame | None:
        return self._turn(self.inner.retrieve(pixels))

    def position_s(self) -> float | None:
        return self.inner.position_s()

    def rewind(self) -> None:
        self.inner.rewind()

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"<RotatedSource {self.degrees} of {self.inner!r}>"


def quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:  # closing a failed camera must not hide the first error
        log.debug("ignored while closing: %r", exc)


def picamera2_available() -> bool:
    """Is picamera2 there for ``auto``? One that is installed but cannot be imported (its apt
    packages built for another numpy than the venv's) is a SourceError saying why, not a
    fall back to a USB camera that a Pi camera's owner does not have."""
    if not picamera2_import.installed():
        return False
    try:
        picamera2_import.import_picamera2()
    except SourceError as exc:
        raise SourceError(
            f"source auto: {exc} (or give a camera index to use a USB camera)"
        ) from None
    return True


def make_source(spec: str, config=None) -> Source:
    """A source from ``--source`` (``auto``, ``picamera2``, ``0``, a file, folder or URL).

    ``config`` is a :class:`deepfer.edge.config.SourceConfig` (camera sizes, ``rotate``);
    raises SourceError for something that is none of these.
    """
    source = _make_source(spec, config)
    return turned(source, getattr(config, "rotate", 0) if config is not None else 0)


def turned(source: Source, degrees: int) -> Source:
    """``source``, its frames turned ``degrees`` clockwise (``source.rotate``); 0: as it is."""
    return RotatedSource(source, degrees) if degrees else source


def _make_source(spec: str, config=None) -> Source:
    if config is None:
        from deepfer.edge.config import SourceConfig

        config = SourceConfig()
    cfg = config
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
    path = user_path(spec)
    if path.is_dir():
        return ImageFolderSource.from_folder(path, cfg.fps)
    if path.is_file():  # a photo or a video as `deepfer detect` tells them apart
        if input_kind(path) == PHOTO:
            return PhotoSource(path, cfg.fps)
        return OpenCVSource(str(path), live=False)
    if "://" not in spec and not path.exists() and ("/" in spec or path.suffix):
        raise SourceError(f"{spec}: no such file or folder")
    if path.exists():  # a device node (/dev/video0), a pipe...
        raise SourceError(
            f"{spec}: not a video file, image or folder (a camera is named by its index: "
            "0 for /dev/video0)"
        )
    raise SourceError(
        f"unknown source {redact_url(spec)!r}: not auto, picamera2, a camera index (0, 1...), an "
        "rtsp:// or http(s):// URL, or an existing video file, image or folder"
    )
