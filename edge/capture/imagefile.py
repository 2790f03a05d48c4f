"""Reading one image file: OpenCV's decoding (the file's orientation tag applied), and a
warning when the file is cut short.

OpenCV decodes a JPEG without its end marker or a PNG without its IEND chunk anyway (grey
below the cut, libjpeg's "Premature end of JPEG file" on stderr): the faces above the cut are
still worth finding, but the user should know why none are found below it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".avif", ".tif", ".tiff",
    ".pgm", ".ppm", ".pbm", ".pnm",
)  # fmt: skip

#: Photo formats OpenCV cannot decode: what to do instead.
UNREADABLE_PHOTOS = {
    ext: "HEIC/HEIF photos (an iPhone's default) cannot be read by OpenCV: convert them to "
    "JPEG first (e.g. `heif-convert photo.heic photo.jpg` from libheif), or set the phone's "
    "camera to Most Compatible"
    for ext in (".heic", ".heif")
}

#: Every suffix taken as a photo: the ones OpenCV reads, and the ones it cannot (so that each
#: such file is reported with what to do, not taken for a video or left out of a folder).
PHOTO_EXTS = (*IMAGE_EXTS, *UNREADABLE_PHOTOS)

_JPEG = b"\xff\xd8"
_PNG = b"\x89PNG\r\n\x1a\n"
#: JPEG markers that stand alone (no length field): TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xDA)}


def cut_short(data: bytes) -> bool:
    """Whether ``data`` is a JPEG whose image data never reaches its end marker, or a PNG
    without its IEND chunk. Anything after the end (padding, a phone's trailer, the video of
    a "motion photo") is fine, and so is a file of another kind or one too broken to walk."""
    if data[:8] == _PNG:
        return b"IEND" not in data
    if data[:2] != _JPEG:
        return False
    # walk the header segments (an EXIF thumbnail's own end marker lies inside one) to the
    # first scan; in scan data every 0xFF byte is escaped, so the next FFD9 is the image's end
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a marker where one must be: leave it to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in _STANDALONE:
            pos += 2
        elif marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos) < 0
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return True  # the file ends inside its header


#: JPEG start-of-frame markers (they hold the picture's size): SOF0-15 but DHT, JPG, DAC.
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Bytes of memory a decoded pixel takes while a picture is searched: the BGR picture and
#: its grey plane (what the pipeline makes of a frame).
BYTES_PER_PIXEL = 4


def picture_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG from its header, or None (another format, or a
    header too broken to walk): known before anything is decoded."""
    if data[:8] == _PNG and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != _JPEG:
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in _STANDALONE:
            pos += 2
        elif marker in _SOF:
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(
                data[pos + 5 : pos + 7], "big"
            )
        elif marker == 0xDA:
            return None
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def memory_available() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def too_large(size: tuple[int, int] | None, available: int | None) -> str | None:
    """Why a picture of ``size`` cannot be decoded with ``available`` bytes of memory, or
    None: a small PNG can unpack to gigabytes, and running out of memory kills the process
    with no message (a Pi Zero 2 W has 512 MB)."""
    if size is None or available is None:
        return None
    need = size[0] * size[1] * BYTES_PER_PIXEL
    if need <= available:
        return None
    return (
        f"{size[0]}x{size[1]} pixels would need {need / 2**20:,.0f} MiB of memory to decode "
        f"and search; {available / 2**20:,.0f} MiB is available: shrink the picture first"
    )


def is_hidden(path: str | Path) -> bool:
    """A hidden file or folder (its name starts with a dot), which a folder scan passes over:
    macOS writes ``._IMG_0001.JPG`` beside each photo on a USB stick or network share (its
    metadata, not a picture), Finder ``.DS_Store``, Jupyter ``.ipynb_checkpoints/``."""
    return Path(path).name.startswith(".")


def is_photo(path: str | Path) -> bool:
    """A photo by its suffix (:data:`PHOTO_EXTS`)."""
    return Path(path).suffix.lower() in PHOTO_EXTS


def unreadable_photo(path: str | Path) -> str | None:
    """What to do with a photo of a format OpenCV cannot decode (by its suffix), or None."""
    return UNREADABLE_PHOTOS.get(Path(path).suffix.lower())


def read_image(path: str | Path) -> np.ndarray | None:
    """A BGR image as ``cv2.imread`` decodes it (orientation tag applied), or None when it
    cannot be read (:func:`load_image` says why); a file cut short is decoded (grey below the
    cut) with a warning."""
    try:
        return load_image(path)
    except InputError:
        return None


def load_image(path: str | Path) -> np.ndarray:
    """A BGR image as ``cv2.imread`` decodes it (orientation tag applied), or an
    :class:`InputError` naming the file and why not (no such file, empty, a format OpenCV
    cannot decode and what to do, too large, cut short, not an image or corrupt).
    (``cv2.imdecode`` on the bytes read for the check would save a read, but it refuses a
    JPEG cut short that ``imread`` decodes down to the cut.)"""
    path = Path(path)
    if not path.is_file():  # (cv2.imread would print its own warning too)
        why = "a folder, not an image" if path.is_dir() else "no such file"
        raise InputError(f"{path}: cannot read this image ({why})")
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 18)  # (a JPEG's size lies after its EXIF: at most 64 kB each)
    except OSError as exc:
        raise InputError(f"{path}: cannot read this image ({exc.strerror or exc})") from None
    why = too_large(picture_size(head), memory_available())
    if why:
        raise InputError(f"{path}: cannot read this image ({why})")
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. over OpenCV's pixel limit: an exception, not None
        raise InputError(f"{path}: cannot read this image ({_opencv_reason(exc)})") from None
    cut = _file_cut_short(path)
    if image is not None:
        if cut:
            log.warning(
                "%s: the file is cut short (an interrupted download or copy?): the picture "
                "below the cut is grey and no face is found there",
                path,
            )
        return image
    hint = unreadable_photo(path)
    if hint:
        raise InputError(f"{path}: {hint}")
    if _size(path) == 0:
        why = "the file is empty"
    elif cut:
        why = "the file is cut short (an interrupted download or copy?) and cannot be decoded"
    else:
        why = "not an image, or corrupt"
    raise InputError(f"{path}: cannot read this image ({why})")


def _opencv_reason(exc: cv2.error) -> str:
    text = str(exc)
    if "CV_IO_MAX_IMAGE_PIXELS" in text:
        return (
            "more pixels than OpenCV decodes by default (2^30); if it is a real picture, "
            "set the environment variable OPENCV_IO_MAX_IMAGE_PIXELS higher"
        )
    detail = (getattr(exc, "err", "") or text.strip().splitlines()[-1]).strip()
    return f"OpenCV failed to decode it: {detail}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _file_cut_short(path: Path) -> bool:
    try:
        return cut_short(path.read_bytes())
    except OSError:
        return False  # decoding reports it
