"""Learnable stand-in faces the tests make themselves (no data set needed), a tiny
deepfer-edge model trained on them (tests/assets/make_tiny_model.py, the Keras fixtures), and
small videos, at a constant or a variable frame rate."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from deepfer.edge.labels import LABELS


def synthetic_faces(n_per_class: int = 12, size: int = 48, seed: int = 0):
    """Learnable stand-in faces: class k is a grating at its own angle, on noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    k = len(LABELS)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for c in range(k):
        angle = np.pi * c / k
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / 8 + phase)
            img = 128 + 70 * wave + rng.normal(0, 20, (size, size))
            xs.append(np.clip(img, 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys)


def write_folder_layout(root: Path, split: str, n_per_class: int = 12, seed: int = 0) -> Path:
    """Kaggle-style ``root/split/<class>/*.png``."""
    x, y = synthetic_faces(n_per_class, seed=seed)
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / split / LABELS[c]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{split}_{i:05d}.png"), img)
    return root / split


def train_tiny_keras_model(data_root: Path, out: Path) -> Path:
    """A deepfer-edge model trained a few epochs on ``data_root/train`` (seconds; needs Keras)."""
    import keras

    from deepfer.data.fer2013 import load_fer2013
    from deepfer.train.models import make_model

    keras.utils.set_random_seed(0)
    data = load_fer2013(data_root, ("train",), progress=False)["train"]
    model = make_model("deepfer-edge")
    for layer in model.layers:  # few steps: let BatchNorm's moving statistics settle
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.6
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(data.x.astype("float32"), data.y, epochs=12, batch_size=32, verbose=0)
    model.save(out)
    return out


#: `deepfer train` options for the tiny runs (the train tests'; one TensorFlow thread: the suite
#: runs a worker per core and one more)
TINY_TRAIN = ["--model", "deepfer-edge", "--batch-size", "32", "--threads", "1", "--no-progress"]


def train_tiny_run(data_root: Path, run: Path, seed: int) -> Path:
    """``run``: a `deepfer train` run folder on the tiny set: 3 epochs, each epoch's weights
    kept (--snapshots), the validation split of split seed 9 (needs TensorFlow)."""
    from deepfer.cli import main

    argv = ["train", "--data", str(data_root), "--out", str(run), "--epochs", "3", *TINY_TRAIN]
    assert main([*argv, "--snapshots", "--seed", str(seed), "--split-seed", "9"]) == 0
    return run


def convert_tiny_model(keras_model: Path, data_root: Path, out: Path, trained_on: str):
    """The tiny model converted by ``deepfer convert``'s API to ``out``'s ``_int8`` (full int8,
    calibrated on ``data_root``) and ``_float32`` .tflite files with their sidecars: the
    :class:`ConversionResult` (needs TensorFlow)."""
    from deepfer.convert.quantize import convert_model

    return convert_model(
        keras_model,
        data_root,
        out,
        n_calibration=140,
        formats=("int8", "float32"),
        trained_on=trained_on,
    )


def make_tiny_fer(root: Path) -> Path:
    """A tiny FER2013-like folder with train/ and test/."""
    write_folder_layout(root, "train", 24, seed=1)
    write_folder_layout(root, "test", 6, seed=2)
    return root


def moving_square_frames(n: int, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """``n`` BGR frames of a bright square moving across a dark picture (``size``: w, h)."""
    w, h = size
    frames = []
    for i in range(n):
        frame = np.full((h, w, 3), 40, np.uint8)
        x = (4 * i) % (w - 16)
        frame[h // 4 : h // 4 + 16, x : x + 16] = 220
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float, fourcc: str = "mp4v") -> Path:
    """``frames`` (BGR, one size) as a video file at a constant ``fps`` (OpenCV's writer)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path} with {fourcc}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_gif(path: Path, frames: list[np.ndarray], delay_cs: int = 10) -> Path:
    """``frames`` (BGR, one size) as a GIF, one frame a still: written here rather than by
    ``cv2.imwrite``, which has no GIF writer before OpenCV 4.12 (4.11 is the newest for numpy
    1.x, a Raspberry Pi's). Colours on a 6x7x6 cube, no dithering; LZW codes kept 9 bits wide
    by a clear code every 254 pixels (valid GIF, barely compressed: a test's size)."""
    h, w = frames[0].shape[:2]
    levels = np.array([6, 7, 6])  # of blue, green, red
    cube = np.stack(np.meshgrid(*(np.arange(n) for n in levels[::-1]), indexing="ij"), -1)
    palette = (cube.reshape(-1, 3) * 255 // (levels[::-1] - 1)).astype(np.uint8)  # RGB
    palette = np.vstack([palette, np.zeros((256 - len(palette), 3), np.uint8)])
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette.tobytes())
    if len(frames) > 1:  # loop for ever (the NETSCAPE2.0 block)
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for frame in frames:
        b, g, r = (frame[..., i].astype(np.int32) * levels[i] // 256 for i in range(3))
        index = ((r * levels[1] + g) * levels[0] + b).ravel()
        runs = [index[i : i + 254] for i in range(0, len(index), 254)]
        codes = np.concatenate([np.insert(run, 0, 256) for run in runs] + [np.array([257])])
        bits = (codes[:, None] >> np.arange(9)) & 1
        data = np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes()
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08"
        for i in range(0, len(data), 255):
            out += bytes([len(data[i : i + 255])]) + data[i : i + 255]
        out += b"\x00"
    path.write_bytes(bytes(out + b"\x3b"))
    return path


# -- a variable frame rate: an mp4's sample durations rewritten --------------------------------

_MP4_TRACK = (b"moov", b"trak")
_MP4_STBL = (*_MP4_TRACK, b"mdia", b"minf", b"stbl")


def _mp4_boxes(data: bytearray, path: tuple[bytes, ...]) -> list[tuple[int, int, int]]:
    """``(offset, size, header size)`` of each box along ``path`` from the top level (the
    first of each name: an mp4 with one track, as OpenCV writes)."""
    chain: list[tuple[int, int, int]] = []
    start, end = 0, len(data)
    for name in path:
        offset = start
        while offset < end:
            size, kind = struct.unpack_from(">I4s", data, offset)
            header = 8
            if size == 1:
                size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
            elif size == 0:
                size = end - offset
            if kind == name:
                break
            offset += size
        else:
            raise ValueError(f"no {'/'.join(n.decode() for n in path)} box in this mp4")
        chain.append((offset, size, header))
        start, end = offset + header, offset + size
    return chain


def _mp4_full_box(data: bytearray, path: tuple[bytes, ...]) -> tuple[int, int]:
    """The offset of a full box's fields after its version and flags, and its version."""
    offset, _, header = _mp4_boxes(data, path)[-1]
    return offset + header + 4, data[offset + header]


def _set_duration(data: bytearray, path: tuple[bytes, ...], duration: int) -> None:
    """The duration field of an mvhd, tkhd or mdhd box (version 0 or 1)."""
    fields, version = _mp4_full_box(data, path)
    skip = {b"mvhd": (12, 20), b"mdhd": (12, 20), b"tkhd": (16, 24)}[path[-1]][version]
    struct.pack_into(">Q" if version else ">I", data, fields + skip, duration)


def _timescale(data: bytearray, path: tuple[bytes, ...]) -> int:
    fields, version = _mp4_full_box(data, path)
    return struct.unpack_from(">I", data, fields + (16 if version else 8))[0]


#: The display matrix (a, b, c, d of the tkhd box's 3x3, 16.16 fixed point) of each turn a
#: player makes, degrees clockwise, as a phone writes them.
_TURNS = {0: (1, 0, 0, 1), 90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}


def set_mp4_rotation(path: Path, degrees: int, matrix: tuple[int, ...] | None = None) -> Path:
    """Tags an mp4's video track to be shown turned ``degrees`` clockwise, in place, as a
    phone tags a video filmed in portrait (its pixels stored on their side): the track
    header's (``tkhd``) display matrix, which players and FFmpeg turn the picture by.
    ``matrix``: its ``(a, b, c, d)`` given instead (a flip: ``(-1, 0, 0, 1)``)."""
    data = bytearray(path.read_bytes())
    fields, version = _mp4_full_box(data, (*_MP4_TRACK, b"tkhd"))
    # after the times, track id, reserved, duration (8 or 4 bytes more in version 1),
    # reserved (8), layer, group, volume, reserved (2 each): the matrix, 9 int32
    at = fields + (32 if version else 20) + 8 + 8
    a, b, c, d = (v * 0x10000 for v in (matrix or _TURNS[degrees]))
    struct.pack_into(">9i", data, at, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def retime_mp4(path: Path, durations_s: list[float]) -> Path:
    """Gives an mp4's video frames these durations (seconds, one per frame, in order), in
    place: a variable frame rate, as phones record, in a file :func:`write_video` made at a
    constant one. Frame ``i`` then starts at ``sum(durations_s[:i])`` (rounded to the track's
    timescale once, not per frame).

    Only the timing tables change: the sample durations (``stts``), the track's, media's and
    movie's durations, and the edit list, made a ``free`` box (FFmpeg would cut the frames
    past the old duration by it). The frames' data offsets stay valid because OpenCV's
    writer puts the ``moov`` box after the ``mdat`` (checked)."""
    data = bytearray(path.read_bytes())
    if _mp4_boxes(data, (b"mdat",))[0][0] > _mp4_boxes(data, (b"moov",))[0][0]:
        raise ValueError(f"{path}: moov before mdat; its chunk offsets would move")
    stts = (*_MP4_STBL, b"stts")
    fields, _ = _mp4_full_box(data, stts)
    entries = struct.unpack_from(">I", data, fields)[0]
    frames = sum(struct.unpack_from(">I", data, fields + 4 + 8 * i)[0] for i in range(entries))
    if frames != len(durations_s):
        raise ValueError(f"{path}: {frames} frames, {len(durations_s)} durations given")
    scale = _timescale(data, (*_MP4_TRACK, b"mdia", b"mdhd"))
    ends = np.round(np.cumsum(durations_s) * scale).astype(np.int64)
    ticks = np.diff(ends, prepend=0)
    if (ticks <= 0).any():
        raise ValueError(f"{path}: a duration is under one tick of the timescale {scale}")
    runs: list[list[int]] = []  # [count, ticks], run-length as stts wants
    for t in ticks.tolist():
        if runs and runs[-1][1] == t:
            runs[-1][0] += 1
        else:
            runs.append([1, t])
    body = struct.pack(">II", 0, len(runs)) + b"".join(struct.pack(">II", *r) for r in runs)
    offset, size, _ = _mp4_boxes(data, stts)[-1]
    box = struct.pack(">I4s", 8 + len(body), b"stts") + body
    grow = len(box) - size
    for parent, _, parent_header in _mp4_boxes(data, _MP4_STBL):  # the boxes around it
        field, kind = (parent + 8, ">Q") if parent_header == 16 else (parent, ">I")
        struct.pack_into(kind, data, field, struct.unpack_from(kind, data, field)[0] + grow)
    data[offset : offset + size] = box
    total = int(ends[-1])
    _set_duration(data, (*_MP4_TRACK, b"mdia", b"mdhd"), total)
    movie_total = round(total / scale * _timescale(data, (b"moov", b"mvhd")))
    _set_duration(data, (b"moov", b"mvhd"), movie_total)
    _set_duration(data, (*_MP4_TRACK, b"tkhd"), movie_total)
    try:
        edts = _mp4_boxes(data, (*_MP4_TRACK, b"edts"))[-1][0]
    except ValueError:
        pass
    else:
        data[edts + 4 : edts + 8] = b"free"
    path.write_bytes(bytes(data))
    return path


def faststart_mp4(path: Path, target: Path) -> Path:
    """``path`` (an mp4 as OpenCV writes it: the ``moov`` after the ``mdat``) with its
    ``moov`` moved before the ``mdat``, as a phone's or a web video's is ("faststart"): the
    chunk offsets (``stco``) move on by the ``moov``'s size. Cut anywhere in its frames, such
    a file still has its index."""
    data = bytearray(path.read_bytes())
    mdat = _mp4_boxes(data, (b"mdat",))[0][0]
    moov_at, moov_size, _ = _mp4_boxes(data, (b"moov",))[0]
    if moov_at < mdat:
        raise ValueError(f"{path}: moov already before mdat")
    moov = bytearray(data[moov_at : moov_at + moov_size])
    fields, _ = _mp4_full_box(moov, (*_MP4_STBL, b"stco"))
    for i in range(struct.unpack_from(">I", moov, fields)[0]):
        at = fields + 4 + 4 * i
        struct.pack_into(">I", moov, at, struct.unpack_from(">I", moov, at)[0] + moov_size)
    rest = data[:moov_at] + data[moov_at + moov_size :]
    target.write_bytes(bytes(rest[:mdat] + moov + rest[mdat:]))
    return target


def set_mp4_pixel_aspect(path: Path, h_spacing: int, v_spacing: int) -> Path:
    """Gives an mp4's pixels the shape ``h_spacing:v_spacing`` (wide pixels when above 1),
    in place: a ``pasp`` box after the video sample entry's fields, as an HDV or DV camera's
    or a DVD's video has (stored 1440 wide, shown 1920). Players show such a video stretched
    to its display aspect; FFmpeg reads the box as the stream's sample aspect ratio."""
    data = bytearray(path.read_bytes())
    if _mp4_boxes(data, (b"mdat",))[0][0] > _mp4_boxes(data, (b"moov",))[0][0]:
        raise ValueError(f"{path}: moov before mdat; its chunk offsets would move")
    stsd = (*_MP4_STBL, b"stsd")
    fields, _ = _mp4_full_box(data, stsd)
    entry = fields + 4  # the first sample entry (an mp4 as OpenCV writes it has one)
    size = struct.unpack_from(">I", data, entry)[0]
    # a visual sample entry's fields are 78 bytes after its header; its boxes follow them
    pasp = struct.pack(">I4sII", 16, b"pasp", h_spacing, v_spacing)
    at = entry + 8 + 78
    data[at:at] = pasp
    struct.pack_into(">I", data, entry, size + len(pasp))
    for parent, _, header in _mp4_boxes(data, stsd):  # the boxes around it
        field, kind = (parent + 8, ">Q") if header == 16 else (parent, ">I")
        struct.pack_into(kind, data, field, struct.unpack_from(kind, data, field)[0] + len(pasp))
    path.write_bytes(bytes(data))
    return path
