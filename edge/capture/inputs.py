"""What a file given as an input is, a photo or a video: decided here for ``deepfer detect``
and ``deepfer run --source`` alike, and the picture of a file that holds one.

A file is a photo by its suffix (:data:`~deepfer.edge.capture.imagefile.PHOTO_EXTS`);
otherwise by what OpenCV's FFmpeg finds in it: two frames or more, a video; one (a still
GIF, a JPEG without a suffix, a one-frame clip), a photo, since a tracker would never see
its face twice. A file FFmpeg cannot open but OpenCV decodes as an image is a photo too.
What a video file's header says (:func:`video_header`, one read of it): an MP4, MOV, M4A or
3GP file whose tracks are audio only, an MP4 or AVI cut short (an interrupted recording or
copy), a rotation tag that mirrors the picture, and an MP4's or MOV's average frame rate.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from deepfer.edge.capture.imagefile import is_photo, load_image
from deepfer.edge.errors import InputError

#: What an input is searched as (:func:`input_kind`).
PHOTO, VIDEO, UNKNOWN = "photo", "video", "unknown"
#: Files a folder given as input holds besides its photos (``PHOTO_EXTS``), by suffix: each
#: is then a video or, holding one picture (a still GIF), a photo, as :func:`input_kind` says.
VIDEO_EXTS = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".ts", ".mts", ".m2ts", ".gif",
)  # fmt: skip


def input_kind(path: Path) -> str:
    """``PHOTO`` or ``VIDEO`` by the module's rules; ``UNKNOWN``: missing, or nothing OpenCV
    can open (reported as a video that cannot be opened when it is read)."""
    path = Path(path)
    if is_photo(path):
        return PHOTO
    if not path.is_file():
        return UNKNOWN
    cap = cv2.VideoCapture(str(path))
    try:
        if cap.isOpened():
            frames = int(cap.grab()) + int(cap.grab())
            if frames:
                return VIDEO if frames == 2 else PHOTO
    finally:
        cap.release()
    with contextlib.suppress(cv2.error):
        if cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None:
            return PHOTO
    return UNKNOWN


#: Pixels this close to square are taken as square (a rounding in the container's ratio).
SQUARE = 0.01
#: Pixel shapes (width over height) past these are taken as a writer's mistake and ignored:
#: video formats have them from about 0.7 (DV) to 2 (anamorphic), and a ratio of 1000:1
#: would make frames of gigabytes.
PIXEL_ASPECTS = (0.25, 4.0)


def pixel_aspect(cap: cv2.VideoCapture) -> float:
    """The width of a video's stored pixel over its height as shown (the stream's sample
    aspect ratio: 4/3 for HDV's 1440x1080 shown at 1920x1080); 1 where it names none."""
    num, den = cap.get(cv2.CAP_PROP_SAR_NUM), cap.get(cv2.CAP_PROP_SAR_DEN)
    return float(num / den) if num > 0 and den > 0 else 1.0


def follow_rotation_tag(cap: cv2.VideoCapture, mirror: bool) -> None:
    """Has OpenCV turn a video's frames by its rotation tag, as players do (a phone's portrait
    video is stored on its side), or not at all for a tag that ``mirror``-s the picture (which
    OpenCV would turn upside down instead: :attr:`VideoHeader.mirror`). Set either way: OpenCV
    4.11, the newest for numpy 1.x (a Raspberry Pi's system numpy), turns none by default
    (its issue 26795); 4.8-4.10 and 4.12 on do."""
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0 if mirror else 1)


def shown_size(cap: cv2.VideoCapture, size: tuple[int, int]) -> tuple[int, int] | None:
    """The size players show a video of non-square pixels at (its stored width stretched by
    :func:`pixel_aspect`, before the turn of its rotation tag: OpenCV gives the frames turned,
    ``size`` as given, so a quarter-turned one is stretched in height), or None for square
    pixels (or a shape past :data:`PIXEL_ASPECTS`)."""
    aspect = pixel_aspect(cap)
    low, high = PIXEL_ASPECTS
    if abs(aspect - 1.0) <= SQUARE or not low <= aspect <= high or not all(size):
        return None
    w, h = size
    quarter = (
        cap.get(cv2.CAP_PROP_ORIENTATION_AUTO)
        and cap.get(cv2.CAP_PROP_ORIENTATION_META) % 180 == 90
    )
    return (w, max(1, round(h * aspect))) if quarter else (max(1, round(w * aspect)), h)


def read_picture(path: Path) -> np.ndarray:
    """The picture of a ``PHOTO`` input: a photo as :func:`load_image` reads it, another
    file's one picture as OpenCV decodes it as an image (orientation tag applied) or else as
    its first frame (non-square pixels stretched and a mirroring tag applied as players show
    them: :func:`shown_size`, :attr:`VideoHeader.mirror`); an :class:`InputError` naming the
    file when there is none."""
    path = Path(path)
    if is_photo(path):
        return load_image(path)
    with contextlib.suppress(cv2.error):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    mirror = video_header(path).mirror
    cap = cv2.VideoCapture(str(path))
    try:
        follow_rotation_tag(cap, bool(mirror))
        ok, image = cap.read()
        shown = shown_size(cap, (image.shape[1], image.shape[0])) if ok else None
    finally:
        cap.release()
    if not ok or image is None:
        raise InputError(f"{path}: cannot read its picture")
    if shown:
        image = cv2.resize(image, shown, interpolation=cv2.INTER_LINEAR)
    return as_shown(image, mirror) if mirror else image


#: Track kinds of ISO base media files (MP4, MOV, M4A, 3GP: the ``hdlr`` box), as said.
_TRACKS = {b"soun": "audio", b"text": "text", b"sbtl": "subtitles", b"subt": "subtitles"}
#: Boxes an ISO base media file may begin with.
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
#: ``stts`` entries (8 bytes each) read at once for :attr:`VideoHeader.rate`: memory stays
#: small however many a file holds or claims.
_STTS_CHUNK = 1 << 16


#: A video cut short that cannot be read for want of its index (an MP4's ``moov``).
NO_INDEX = "no_index"
#: A video whose frames stop short of where its header says it ends: read up to the cut.
PART = "part"


@dataclass(frozen=True)
class VideoHeader:
    """What a video file's header says, from one read of it (:func:`video_header`); each
    None where the file says nothing of it, is of another format or cannot be read.

    ``no_video``: why it holds nothing to look at, when its container says so itself: an
    MP4, MOV, M4A or 3GP whose tracks are all audio (or text) gives ``"holds no video stream
    (only audio)"`` (None with a video track, or no track list to tell: a recording cut
    short). ``cut``: ``(kind, words)`` for a file cut short (an interrupted recording, copy or
    download). An MP4, MOV or 3GP (ISO boxes): :data:`NO_INDEX` when it has no whole track
    list (``moov``: a camera or phone writes it last, and without it nothing can play the
    file), :data:`PART` when a box runs past the file's end but the track list is there. An
    AVI (RIFF): :data:`PART` when its RIFF chunk runs past the end (FFmpeg reads an AVI
    without its index). ``mirror``: ``(a, b, c, d)`` of an MP4's or MOV's video track display
    matrix (``tkhd``) when it mirrors the picture (a negative determinant: a turn and a flip,
    as a front camera's video may be tagged). OpenCV takes such a tag for a turn alone (a
    mirrored picture read upside down); players show it mirrored (:func:`as_shown`).
    """

    no_video: str | None = None
    cut: tuple[str, str] | None = None
    mirror: tuple[int, int, int, int] | None = None
    #: An MP4's or MOV's average frame rate (first video track: frames over the sum of their
    #: durations, FFmpeg's ``avg_frame_rate``); None for a fragmented file or another format.
    #: OpenCV 4.8 names another for a variable rate (its base rate, ``r_frame_rate``: 60 for
    #: a clip at 60 then 10 fps that averages 30; OpenCV PR 23692, undone in 4.9 by PR 24492).
    rate: float | None = None


def video_header(path: Path) -> VideoHeader:
    """A video file's :class:`VideoHeader`: its boxes' (or RIFF chunks') headers read once,
    never its frames."""
    try:
        with open(path, "rb") as fh:
            end = fh.seek(0, 2)
            head = _read_at(fh, 0, 12)
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                return VideoHeader(cut=_riff_cut(fh, end))
            top = _top_boxes(fh, end, overrun=True)
            tracks = _tracks(fh, [box for box in top if box[2] <= end])
            return VideoHeader(
                _no_video(tracks), _iso_cut(top, end), _mirror(fh, tracks), _rate(fh, top, tracks)
            )
    except OSError:
        return VideoHeader()


def _no_video(tracks: list[tuple[bytes, int, int]] | None) -> str | None:
    kinds = None if tracks is None else [kind for kind, _, _ in tracks]
    if kinds is None or b"vide" in kinds:
        return None
    if not kinds:
        return "holds no video stream (no streams at all)"
    said = sorted({_TRACKS.get(k, k.decode("latin-1").strip() or "unknown") for k in kinds})
    return f"holds no video stream (only {' and '.join(said)})"


def _mirror(
    fh: BinaryIO, tracks: list[tuple[bytes, int, int]] | None
) -> tuple[int, int, int, int] | None:
    """:attr:`VideoHeader.mirror` from the first video track's ``tkhd``."""
    try:
        for kind, start, stop in tracks or ():
            if kind != b"vide":
                continue
            for body, end in _children(fh, start, stop, b"tkhd"):
                at = body + 4 + (32 if _read_at(fh, body, 1) == b"\1" else 20) + 16
                if at + 36 > end:
                    return None
                m = struct.unpack(">9i", _read_at(fh, at, 36))
                a, b, c, d = (round(v / 65536) for v in (m[0], m[1], m[3], m[4]))
                dihedral = {abs(a), abs(b), abs(c), abs(d)} == {0, 1} and (
                    (a == d == 0) != (b == c == 0)
                )
                return (a, b, c, d) if dihedral and a * d - b * c < 0 else None
    except struct.error:
        return None
    return None


def _rate(
    fh: BinaryIO, top: list[tuple[bytes, int, int]], tracks: list[tuple[bytes, int, int]] | None
) -> float | None:
    """:attr:`VideoHeader.rate` from the first video track's time scale (``mdhd``) and sample
    durations (``stts``); None for a fragmented file (its samples are in ``moof`` boxes)."""
    if any(kind == b"moof" for kind, _, _ in top):
        return None
    try:
        for kind, start, stop in tracks or ():
            if kind != b"vide":
                continue
            for mdia in _children(fh, start, stop, b"mdia"):
                scale = 0
                for body, end in _children(fh, *mdia, b"mdhd"):
                    at = body + 4 + (16 if _read_at(fh, body, 1) == b"\1" else 8)
                    scale = struct.unpack(">I", _read_at(fh, at, 4))[0] if at + 4 <= end else 0
                for minf in _children(fh, *mdia, b"minf"):
                    for stbl in _children(fh, *minf, b"stbl"):
                        for body, end in _children(fh, *stbl, b"stts"):
                            frames, ticks = _stts_sums(fh, body, end)
                            rate = frames * scale / ticks if ticks else 0.0
                            return rate if 0 < rate < 1000 else None
            return None
    except struct.error:
        return None
    return None


def _stts_sums(fh: BinaryIO, body: int, end: int) -> tuple[float, float]:
    """``(frames, ticks)`` of an ``stts`` box (its body from ``body`` to ``end``): the sums of
    its sample counts and of count x duration, read :data:`_STTS_CHUNK` entries at a time (a
    long variable-rate recording has millions; a broken file may claim more than it holds:
    then ``(0, 0)``)."""
    n = struct.unpack(">I", _read_at(fh, body + 4, 4))[0]
    stop = body + 8 + 8 * n
    if stop > end:
        return 0.0, 0.0
    frames = ticks = 0.0
    for at in range(body + 8, stop, 8 * _STTS_CHUNK):
        raw = _read_at(fh, at, min(8 * _STTS_CHUNK, stop - at))
        if len(raw) % 8:
            return 0.0, 0.0
        table = np.frombuffer(raw, dtype=">u4").reshape(-1, 2).astype(np.float64)
        frames += float(table[:, 0].sum())
        ticks += float((table[:, 0] * table[:, 1]).sum())
    return frames, ticks


def as_shown(image: np.ndarray, matrix: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` (as stored) as players show it by a display ``matrix`` of quarter turns and
    flips: a stored point (x, y) is shown at (a x + c y, b x + d y), moved back into view."""
    a, b, c, d = matrix
    if a == 0:  # a quarter turn: rows become columns
        image = image.swapaxes(0, 1)
        flip_rows, flip_cols = b < 0, c < 0
    else:
        flip_rows, flip_cols = d < 0, a < 0
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def _iso_cut(top: list[tuple[bytes, int, int]], end: int) -> tuple[str, str] | None:
    """:attr:`VideoHeader.cut` of an ISO base media file from its top-level boxes (the last
    one may run past the file's ``end``)."""
    if not top:
        return None
    last_end = top[-1][2]
    cut = last_end > end and top[-1][0].isalnum()  # (not trailing bytes that are no box)
    if any(kind == b"moov" and stop <= end for kind, _, stop in top):
        return (PART, _cut_words(end, last_end, "boxes")) if cut else None
    if not any(kind in (b"mdat", b"moov") for kind, _, _ in top):
        return None  # no frames and no index: not a recording cut short (left to FFmpeg)
    how = f"{end:,} bytes of at least {last_end:,}, " if cut else ""
    return NO_INDEX, (
        f"is cut short ({how}with no index: the MP4 'moov' box, which a camera or phone "
        "writes last, is missing or cut): an interrupted recording, copy or download; it "
        "cannot be played as it is (copy it again, or rebuild the index with a repair tool "
        "such as untrunc)"
    )


def _cut_words(end: int, said: int, what: str) -> str:
    share = f"{end / said:.0%}" if said < 100 * end else "under 1%"
    return (
        f"is cut short ({end:,} bytes of the {said:,} its {what} say, {share}): an "
        "interrupted recording, copy or download"
    )


def _read_at(fh: BinaryIO, at: int, n: int) -> bytes:
    fh.seek(at)
    return fh.read(n)


def _riff_cut(fh: BinaryIO, end: int) -> tuple[str, str] | None:
    """An AVI's RIFF chunks (``AVI ``, then ``AVIX`` past 1 GB) followed to the file's end:
    :data:`PART` when the last one runs past it."""
    at = 0
    while at + 8 <= end:
        kind, size = struct.unpack("<4sI", _read_at(fh, at, 8))
        if kind != b"RIFF" or size == 0:  # (0: a writer that never came back to fill it in)
            return None
        stop = at + 8 + size + (size & 1)
        if stop > end + 1:  # (a last pad byte may be left out)
            return PART, _cut_words(end, stop, "RIFF chunks")
        at = stop
    return None


def _top_boxes(fh: BinaryIO, end: int, overrun: bool = False) -> list[tuple[bytes, int, int]]:
    """The top-level boxes of an ISO base media file (:func:`_boxes`), or none when its first
    box is not one such a file begins with (another format: its bytes are not walked)."""
    boxes = _boxes(fh, 0, end, overrun)
    first = next(boxes, None)
    return [] if first is None or first[0] not in _FIRST_BOXES else [first, *boxes]


def _tracks(fh: BinaryIO, top: list[tuple[bytes, int, int]]) -> list[tuple[bytes, int, int]] | None:
    """``(handler type, body start, end)`` of each track (``trak``: ``vide``, ``soun``, ...)
    of an ISO base media file from its whole top-level boxes ``top``, or None when the file
    is not one or has no track list (``moov``)."""
    for kind, start, stop in top:
        if kind != b"moov":
            continue
        tracks = []
        for trak in _children(fh, start, stop, b"trak"):
            for mdia in _children(fh, *trak, b"mdia"):
                for body, end in _children(fh, *mdia, b"hdlr"):
                    if end - body >= 12:  # past version and flags, pre_defined
                        tracks.append((_read_at(fh, body + 8, 4), *trak))
        return tracks
    return None


def _children(fh: BinaryIO, start: int, stop: int, kind: bytes) -> Iterator[tuple[int, int]]:
    for found, body, end in _boxes(fh, start, stop):
        if found == kind:
            yield body, end


def _boxes(
    fh: BinaryIO, start: int, stop: int, overrun: bool = False
) -> Iterator[tuple[bytes, int, int]]:
    """``(type, body start, end)`` of each box from ``start`` to ``stop``; stops at one
    that does not fit (a file cut short), or with ``overrun`` gives it last, its end past
    ``stop`` as its size says."""
    at = start
    while at + 8 <= stop:
        fh.seek(at)
        size, kind = struct.unpack(">I4s", fh.read(8))
        body = at + 8
        if size == 1:  # a 64-bit size follows
            large = fh.read(8)
            if len(large) < 8:
                return
            size, body = struct.unpack(">Q", large)[0], at + 16
        elif size == 0:  # to the end
            size = stop - at
        if size < body - at:
            return
        if at + size > stop:
            if overrun:
                yield kind, body, at + size
            return
        yield kind, body, at + size
        at += size
