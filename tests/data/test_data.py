"""FER2013 loaders on small data the tests write: CSV, Kaggle folders, train/validation folders."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfer.data.dataset import (
    LAYOUT_CLASSES,
    LAYOUT_CSV,
    LAYOUT_SPLITS,
    DataError,
    format_counts,
)
from deepfer.data.fer2013 import load_csv, load_fer2013, load_folder, load_split
from deepfer.data.splits import class_weights, stratified_split
from deepfer.edge.capture.pictures import as_picture
from deepfer.edge.labels import FER2013_CSV_IDS, LABELS
from deepfer.edge.preprocess import prepare_face

# What each fer2013.csv emotion id must become, written out by hand (not derived from the code).
CSV_ID_TO_LABEL = {
    0: "angry",
    1: "disgust",
    2: "fear",
    3: "happy",
    4: "sad",
    5: "surprise",
    6: "neutral",
}


def face_of(value: int) -> np.ndarray:
    """A flat 48x48 face whose pixel value identifies it."""
    return np.full((48, 48), value, np.uint8)


def write_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    lines = ["emotion,pixels,Usage"] + [f"{e},{p},{u}" for e, p, u in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def pixels_text(img: np.ndarray) -> str:
    return " ".join(str(v) for v in img.reshape(-1))


def test_csv_ids_map_to_deepfer_labels():
    assert FER2013_CSV_IDS == CSV_ID_TO_LABEL
    assert LABELS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def test_csv_all_usages_and_label_mapping(tmp_path):
    usages = {"Training": 3, "PublicTest": 2, "PrivateTest": 1}
    rows = []
    for usage, per_id in usages.items():
        for emotion in range(7):
            for j in range(per_id):
                # the pixel value encodes the emotion id, so each face can be traced back
                rows.append((emotion, pixels_text(face_of(10 * emotion + j)), usage))
    path = write_csv(tmp_path / "fer2013.csv", rows)

    splits = load_csv(path, progress=False)
    assert set(splits) == {"train", "test", "private_test"}
    for split, usage in (
        ("train", "Training"),
        ("test", "PublicTest"),
        ("private_test", "PrivateTest"),
    ):
        ds = splits[split]
        assert len(ds) == 7 * usages[usage]
        assert ds.x.shape == (len(ds), 48, 48, 1) and ds.x.dtype == np.uint8
        assert set(ds.class_counts().values()) == {usages[usage]}
        for img, y in zip(ds.x, ds.y):
            emotion = int(img[0, 0, 0]) // 10
            assert LABELS[y] == CSV_ID_TO_LABEL[emotion]
    # csv id 4 is sad, DeepFER index 5; csv id 6 is neutral, DeepFER index 4
    train = splits["train"]
    assert set(train.y[train.x[:, 0, 0, 0] // 10 == 4]) == {LABELS.index("sad")} == {5}
    assert set(train.y[train.x[:, 0, 0, 0] // 10 == 6]) == {LABELS.index("neutral")} == {4}

    # load_fer2013 takes the file, or a folder holding it, and returns the splits asked for
    only = load_fer2013(path, ("train", "test"), progress=False)
    assert set(only) == {"train", "test"}
    assert set(load_fer2013(tmp_path, ("private_test",), progress=False)) == {"private_test"}


def test_csv_saved_by_excel_with_a_byte_order_mark(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark: the first column is still
    "emotion" (it was reported missing)."""
    rows = [(3, pixels_text(face_of(30)), "Training"), (0, pixels_text(face_of(1)), "PublicTest")]
    path = write_csv(tmp_path / "fer2013.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    splits = load_csv(path, progress=False)
    assert len(splits["train"]) == 1 and LABELS[splits["train"].y[0]] == CSV_ID_TO_LABEL[3]


def test_csv_bad_pixel_count_names_the_row(tmp_path):
    good = pixels_text(face_of(1))
    path = write_csv(
        tmp_path / "fer2013.csv",
        [(0, good, "Training"), (3, good, "Training"), (3, "1 2 3", "Training")],
    )
    with pytest.raises(DataError, match=r"row 3 \(line 4\): 3 pixel values, expected 2304"):
        load_csv(path, progress=False)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((7, None, "Training"), "emotion '7' is not a FER2013 id"),
        ((2, None, "Validation"), "unknown Usage 'Validation'"),
        ((2, "1 x 3", "Training"), "pixels are not all numbers"),
    ],
)
def test_csv_bad_values_name_the_row(tmp_path, row, message):
    emotion, pixels, usage = row
    pixels = pixels or pixels_text(face_of(1))
    path = write_csv(
        tmp_path / "f.csv", [(0, pixels_text(face_of(1)), "Training"), (emotion, pixels, usage)]
    )
    with pytest.raises(DataError, match=rf"row 2 \(line 3\): {message}"):
        load_csv(path, progress=False)


def test_csv_missing_columns(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("label,image\n0,1 2 3\n")
    with pytest.raises(DataError, match="missing column"):
        load_csv(path, progress=False)


def write_class_images(split_dir: Path, folders: dict[str, int], n: int = 3, ext: str = ".png"):
    """``split_dir/<folder>/i.png``; each image's pixel value is the folder's expected index."""
    for folder, index in folders.items():
        d = split_dir / folder
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i}{ext}"), face_of(10 * index + i))


def check_labels(ds):
    """Every face's pixel value says which DeepFER index it must have."""
    assert (ds.x[:, 0, 0, 0] // 10 == ds.y).all()


def test_kaggle_train_test_folders(tmp_path):
    folders = {label: i for i, label in enumerate(LABELS)}
    write_class_images(tmp_path / "train", folders, n=4)
    write_class_images(tmp_path / "test", folders, n=2, ext=".jpg")
    splits = load_fer2013(tmp_path, progress=False)
    assert set(splits) == {"train", "test"}
    assert splits["train"].class_counts() == dict.fromkeys(LABELS, 4)
    assert splits["test"].class_counts() == dict.fromkeys(LABELS, 2)
    check_labels(splits["train"])
    # jpg is lossy: flat images stay within a level or two
    assert (np.abs(splits["test"].x[:, 0, 0, 0].astype(int) // 10 - splits["test"].y) == 0).all()
    assert splits["train"].files[0].startswith("angry/")


def test_train_validation_folders_and_folder_aliases(tmp_path):
    aliases = {
        "Anger": LABELS.index("angry"),
        "disgusted": LABELS.index("disgust"),
        "scared": LABELS.index("fear"),
        "Happiness": LABELS.index("happy"),
        "NEUTRAL": LABELS.index("neutral"),
        "sadness": LABELS.index("sad"),
        "Surprised": LABELS.index("surprise"),
    }
    write_class_images(tmp_path / "Training", aliases, n=3)
    write_class_images(tmp_path / "validation", {"fearful": 2, "happy": 3}, n=2)
    splits = load_fer2013(tmp_path, progress=False)
    assert set(splits) == {"train", "val"}
    assert splits["train"].class_counts() == dict.fromkeys(LABELS, 3)
    check_labels(splits["train"])
    check_labels(splits["val"])
    assert splits["val"].class_counts()["fear"] == 2
    # "val/" is accepted too
    (tmp_path / "validation").rename(tmp_path / "val")
    assert len(load_fer2013(tmp_path, ("val",), progress=False)["val"]) == 4


def test_unknown_class_folders_are_ignored_with_a_warning(tmp_path, caplog):
    write_class_images(tmp_path, {"happy": 3, "contempt": 9}, n=2)
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 2 and set(ds.y) == {3}
    assert (
        "not DeepFER classes (angry, disgust, fear, happy, neutral, sad, surprise): "
        "'contempt' (2 images)"
    ) in caplog.text


def test_a_users_folder_names_are_matched_and_the_mapping_is_said(tmp_path, caplog):
    """A user's own folders: a name typed with a trailing space ("neutral ") was ignored as
    "not a DeepFER class" (the warning's "neutral" looked like a class name), and how the
    other names were read (anger -> angry) was never said. Now the space is forgiven and
    the mapping, and the classes without a folder, are said in one line."""
    folders = {"Happy": 3, "anger": 0, "neutral ": 4, "Surprised": 6, "sad": 5}
    write_class_images(tmp_path, folders, n=2)
    with caplog.at_level(logging.INFO, logger="deepfer.data.fer2013"):
        splits = load_fer2013(tmp_path, progress=False)
    check_labels(splits["train"])
    assert splits["train"].class_counts()["neutral"] == 2
    assert caplog.text.count("\n") == 1, caplog.text
    assert (
        "class folders read as 'Happy' -> happy, 'Surprised' -> surprise, 'anger' -> angry, "
        "'neutral ' -> neutral; no folder for disgust, fear"
    ) in caplog.text
    # FER2013's own folders: nothing to say
    caplog.clear()
    write_class_images(tmp_path / "fer", {label: i for i, label in enumerate(LABELS)}, n=1)
    with caplog.at_level(logging.INFO, logger="deepfer.data.fer2013"):
        load_folder(tmp_path / "fer", progress=False)
    assert caplog.text == ""


def test_images_in_sub_folders_and_two_folders_of_one_class_are_said(tmp_path, caplog):
    """Images one level down in a class folder are not loaded (as before), but a warning
    says how many and where; two folders read as one class (happy/ and happiness/) too."""
    write_class_images(tmp_path, {"happy": 3, "sad": 5}, n=2)
    write_class_images(tmp_path / "happy", {"batch1": 3}, n=4)
    write_class_images(tmp_path, {"happiness": 7}, n=1)
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 5
    assert "4 image(s) in sub-folders of the class folders are not loaded (happy/batch1)" in (
        caplog.text
    )
    assert "folders happiness, happy are all read as happy" in caplog.text


def test_the_loading_bar_is_drawn_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    """``deepfer evaluate`` / ``train`` load with a bar on stderr: in a log file or a pipe it
    ran into the lines printed after it (``loading test: 100%|...| model: ...``)."""
    import io

    write_class_images(tmp_path, {"happy": 3, "sad": 5}, n=3)
    assert len(load_folder(tmp_path, progress=True)) == 6
    assert capsys.readouterr().err == ""  # not a terminal: nothing drawn

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert len(load_folder(tmp_path, progress=True)) == 6
    assert f"loading {tmp_path.name}" in terminal.getvalue()
    terminal.seek(0)
    terminal.truncate()
    load_folder(tmp_path, progress=False)  # --no-progress
    assert terminal.getvalue() == ""


def test_each_class_folder_is_listed_once(tmp_path, monkeypatch, caplog):
    """Images, files of other kinds and sub-folders all come from one listing of each class
    folder (it was listed once for the images and again for the other files)."""
    write_class_images(tmp_path, {"happy": 3, "sad": 5}, n=2)
    (tmp_path / "happy" / "IMG_0002.HEIC").write_bytes(b"not read")
    write_class_images(tmp_path / "sad", {"batch1": 5}, n=1)
    listed: list[Path] = []
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: (listed.append(self), iterdir(self))[1])
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 4
    assert "1 file(s) in the class folders are not loaded" in caplog.text
    assert "1 image(s) in sub-folders of the class folders are not loaded (sad/batch1)" in (
        caplog.text
    )
    for sub in ("happy", "sad"):
        assert listed.count(tmp_path / sub) == 1, listed


def test_hidden_files_and_folders_are_passed_over(tmp_path, caplog):
    """A dataset copied from a Mac to a USB stick has a ``._x.png`` (metadata, no picture)
    beside every image and ``.DS_Store``; Jupyter leaves ``.ipynb_checkpoints/``. They were
    read as images (every one "unreadable") and folders (a warning): now passed over."""
    write_class_images(tmp_path, {"happy": 3, "sad": 5}, n=2)
    for image in list(tmp_path.glob("*/*.png")):
        (image.parent / f"._{image.name}").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_class_images(tmp_path, {".ipynb_checkpoints": 0}, n=1)
    write_class_images(tmp_path / "happy", {".ipynb_checkpoints": 0}, n=1)
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 4 and sorted(ds.files) == [
        f"{c}/{i}.png" for c in ("happy", "sad") for i in (0, 1)
    ]
    assert caplog.text == ""


def test_class_folders_beside_split_folders_are_said_not_read(tmp_path, caplog):
    """A user puts held-out faces in my_faces/test/ beside the class folders: the folder is
    then a split layout and its class folders were left out without a word (deepfer train
    then said only 'no training split found')."""
    write_class_images(tmp_path, {"Happy": 3, "sad": 5}, n=2)
    write_class_images(tmp_path / "test", {"happy": 3}, n=1)
    with caplog.at_level(logging.WARNING, logger="deepfer.data.fer2013"):
        splits = load_fer2013(tmp_path, ("train", "test"), progress=False)
    assert list(splits) == ["test"]
    assert caplog.records[0].getMessage() == (
        f"{tmp_path}: the class folders 'Happy', 'sad' are not read: beside split folders "
        "(test/) only those are; move them into one (train/ for training)"
    )


def test_a_binary_file_given_as_csv_is_named(tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match=f"{bad}: not a text CSV file"):
        load_csv(bad, progress=False)


def test_plain_class_folder_loads_as_train(tmp_path):
    write_class_images(tmp_path, {"sad": 5, "happy": 3}, n=2)
    splits = load_fer2013(tmp_path, progress=False)
    assert list(splits) == ["train"] and len(splits["train"]) == 4


def test_the_layout_read_is_returned_with_the_faces(tmp_path):
    """The loader says which layout it read, so that training, evaluation and conversion
    need not judge the folder again (a folder of class folders is one labelled set)."""
    mine = tmp_path / "mine"
    write_class_images(mine, {"Happy": 3, "neutral ": 4}, n=3)
    ds = load_fer2013(mine, progress=False)["train"]
    assert ds.layout == LAYOUT_CLASSES
    assert ds.subset(np.arange(2)).layout == LAYOUT_CLASSES  # a validation slice keeps it
    for split in ("test", "train"):  # all of it, named so, whatever --split says
        faces, name = load_split(mine, split, (48, 48), progress=False)
        assert (name, len(faces), faces.layout) == ("all", 6, LAYOUT_CLASSES)
    fer = tmp_path / "fer"
    write_class_images(fer / "train", {"sad": 5}, n=2)
    write_class_images(fer / "test", {"sad": 5}, n=1)
    assert {k: v.layout for k, v in load_fer2013(fer, progress=False).items()} == {
        "train": LAYOUT_SPLITS,
        "test": LAYOUT_SPLITS,
    }
    assert load_split(fer, "train", (48, 48), progress=False)[1] == "train"
    csv_file = write_csv(tmp_path / "fer2013.csv", [(3, pixels_text(face_of(30)), "Training")])
    assert load_fer2013(csv_file, progress=False)["train"].layout == LAYOUT_CSV


def test_colour_and_odd_sized_images_are_converted(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (100, 80, 3), dtype=np.uint8)
    bgra = rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)
    sixteen = (rng.integers(0, 256, (48, 48)) * 257).astype(np.uint16)
    d = tmp_path / "happy"
    d.mkdir()
    cv2.imwrite(str(d / "a_colour.png"), colour)
    cv2.imwrite(str(d / "b_bgra.png"), bgra)
    cv2.imwrite(str(d / "c_16bit.png"), sixteen)
    ds = load_folder(tmp_path, progress=False)
    assert ds.x.shape == (3, 48, 48, 1) and ds.x.dtype == np.uint8
    np.testing.assert_array_equal(ds.x[0, ..., 0], prepare_face(colour))
    np.testing.assert_array_equal(ds.x[1, ..., 0], prepare_face(bgra))
    np.testing.assert_array_equal(ds.x[2, ..., 0], (sixteen >> 8).astype(np.uint8))
    # (the edge's rule for a 16-bit picture: what EmotionRecognizer reads such an array as)
    np.testing.assert_array_equal(ds.x[2, ..., 0], as_picture(sixteen))
    # and at another input size
    assert load_folder(tmp_path, size=64, progress=False).x.shape == (3, 64, 64, 1)


def with_orientation_tag(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF segment holding only an orientation tag, as a phone writes it."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"  # big-endian, one IFD entry
    tiff += b"\x01\x12\x00\x03\x00\x00\x00\x01" + bytes([0, orientation, 0, 0]) + bytes(4)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]


def test_whole_photos_given_as_face_crops_are_said_once_and_loaded(tmp_path, caplog):
    """A user's class folders of whole phone photos (4:3, or thousands of pixels) are squeezed
    to 48x48 as one face each: loaded as before, with one warning that says how many, shows one,
    and how to get face crops. Face crops (square-ish, a few hundred pixels) draw no word."""
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a_crop.png": (200, 180), "b_crop.png": (48, 48),
                         "c_big_crop.png": (900, 900)}.items():  # fmt: skip
        cv2.imwrite(str(tmp_path / "happy" / name), rng.integers(0, 255, (h, w, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        assert len(load_folder(tmp_path, progress=False)) == 3
    assert "whole photos" not in caplog.text
    photos = {"happy/IMG_0001.jpg": (1200, 1600), "sad/IMG_0002.jpg": (1000, 1000),
              "sad/IMG_0003.jpg": (400, 300)}  # fmt: skip
    for name, (h, w) in photos.items():
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (h, w, 3), np.uint8))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 6 and ds.x.shape[1:] == (48, 48, 1)  # loaded all the same
    said = [r.getMessage() for r in caplog.records if "whole photos" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith(
        f"{tmp_path}: 3 of the 6 pictures look like whole photos, not face crops "
        "(e.g. happy/IMG_0001.jpg, 1600x1200): 960 px or larger, or far from square"
    )
    assert "squeezed to 48x48" in said[0] and "deepfer detect" in said[0]


def test_a_phone_photo_is_turned_upright_by_its_orientation_tag(tmp_path):
    """A phone stores a portrait photo sideways with orientation tag 6 ("turn 90 degrees
    clockwise to view"). Training read the pixels as stored (IMREAD_UNCHANGED ignores the
    tag) while the device's photo reader turns them upright: the user's faces trained
    sideways. Now both read them upright."""
    from deepfer.edge.capture.imagefile import load_image

    upright = np.tile(np.linspace(0, 250, 96, dtype=np.uint8)[:, None], (1, 96))  # dark top
    upright = cv2.cvtColor(upright, cv2.COLOR_GRAY2BGR)
    stored = np.ascontiguousarray(np.rot90(upright))  # as the sensor wrote it
    jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    d = tmp_path / "happy"
    d.mkdir()
    (d / "IMG_0001.JPG").write_bytes(with_orientation_tag(jpeg, 6))
    ds = load_folder(tmp_path, progress=False)
    face = ds.x[0, ..., 0].astype(int)
    np.testing.assert_array_equal(face, prepare_face(load_image(d / "IMG_0001.JPG")))
    assert np.abs(face - prepare_face(upright)).max() <= 3  # (JPEG)


def test_corrupt_files_are_skipped_and_counted_in_one_warning(tmp_path, caplog):
    write_class_images(tmp_path, {"angry": 0, "fear": 2}, n=3, ext=".jpg")
    (tmp_path / "angry" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "fear" / "empty.png").write_bytes(b"")
    (tmp_path / "fear" / "notes.txt").write_text("not an image: not loaded, not counted")
    # cut short: OpenCV would decode these anyway, grey below the cut
    face = (np.arange(48 * 48).reshape(48, 48) % 251).astype(np.uint8)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, face)[1].tobytes()
        (tmp_path / "fear" / f"truncated{ext}").write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.WARNING, logger="deepfer.data.fer2013"):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 6 and ds.skipped == 4
    warnings = [r for r in caplog.records if r.getMessage().startswith(f"{tmp_path}: skipped")]
    assert len(warnings) == 1
    assert "skipped 4 unreadable or corrupt image(s)" in warnings[0].getMessage()


def test_files_in_class_folders_that_are_not_read_are_said(tmp_path, caplog):
    """An iPhone's photos are .HEIC, which OpenCV cannot decode: they were passed over
    without a word, as was a GIF, so a user's class lost faces silently. Now one warning
    names what was not loaded and, for HEIC, what to do."""
    write_class_images(tmp_path, {"happy": 3, "sad": 5}, n=2)
    for name in ("IMG_0002.HEIC", "IMG_0003.heic", "smile.gif"):
        (tmp_path / "happy" / name).write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "sad" / "notes.txt").write_text("labelled by me")
    with caplog.at_level(logging.WARNING, logger="deepfer.data.fer2013"):
        ds = load_folder(tmp_path, progress=False)
    assert len(ds) == 4 and len(caplog.records) == 1
    assert caplog.records[0].getMessage() == (
        f"{tmp_path}: 4 file(s) in the class folders are not loaded (not an image format "
        "DeepFER reads): 2 .heic, 1 .gif, 1 .txt (e.g. happy/IMG_0002.HEIC); HEIC/HEIF photos "
        "(an iPhone's default) cannot be read by OpenCV: convert them to JPEG first (e.g. "
        "`heif-convert photo.heic photo.jpg` from libheif), or set the phone's camera to Most "
        "Compatible"
    )


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "missing", progress=False)
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match="no class folders found"):
        load_folder(tmp_path, progress=False)
    with pytest.raises(DataError, match="neither fer2013.csv nor"):
        load_fer2013(tmp_path, progress=False)
    # one class's folder given instead of the folder of class folders
    mine = tmp_path / "my_faces"
    write_class_images(mine, {"Happy": 3}, n=1)
    with pytest.raises(DataError) as exc:
        load_fer2013(mine / "Happy", progress=False)
    assert str(exc.value) == (
        f"{mine / 'Happy'}: found neither fer2013.csv nor train/ test/ validation/ folders "
        "nor class folders (angry/, disgust/, fear/, happy/, neutral/, sad/, surprise/); it "
        f"holds images itself: give the folder above it, {mine}"
    )
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match="none of the 1 images could be read"):
        load_folder(tmp_path, progress=False)


def test_stratified_split():
    y = np.repeat(np.arange(7), [40, 5, 30, 80, 50, 45, 2])
    keep, held = stratified_split(y, 0.2, seed=3)
    assert len(np.intersect1d(keep, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(y)))
    held_counts = np.bincount(y[held], minlength=7)
    np.testing.assert_array_equal(held_counts, [8, 1, 6, 16, 10, 9, 1])
    # every class stays in training, and the same seed gives the same split
    assert (np.bincount(y[keep], minlength=7) > 0).all()
    again = stratified_split(y, 0.2, seed=3)
    assert np.array_equal(again[1], held)
    assert not np.array_equal(stratified_split(y, 0.2, seed=4)[1], held)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            stratified_split(y, bad)


def test_class_weights():
    y = np.array([0] * 10 + [1] * 2 + [3] * 8)
    w = class_weights(y)
    n, k_present = 20, 3
    assert w[0] == pytest.approx(n / (k_present * 10))
    assert w[1] == pytest.approx(n / (k_present * 2))
    assert w[3] == pytest.approx(n / (k_present * 8))
    assert w[2] == w[4] == w[5] == w[6] == 0.0
    # balanced: every present class carries the same total weight
    totals = [w[c] * np.sum(y == c) for c in (0, 1, 3)]
    assert totals == pytest.approx([n / k_present] * 3)


def test_class_counts_report(tmp_path):
    write_class_images(tmp_path / "train", {"happy": 3, "sad": 5}, n=3)
    ds = load_fer2013(tmp_path, ("train",), progress=False)["train"]
    text = format_counts(ds)
    assert text.startswith("train: 6 faces")
    assert "happy 3 (50.0%)" in text and "angry 0 (0.0%)" in text


REAL_TRAIN = {
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "neutral": 4965,
    "sad": 4830,
    "surprise": 3171,
}
REAL_TEST = {
    "angry": 467,
    "disgust": 56,
    "fear": 496,
    "happy": 895,
    "neutral": 607,
    "sad": 653,
    "surprise": 415,
}


@pytest.mark.real_data
def test_real_fer2013_folders_exact_counts(data_dir):
    """The real Kaggle folders: 28,709 train and 3,589 PublicTest faces (about 30 s)."""
    root = data_dir / "fer2013"
    if not (root / "train").is_dir():
        pytest.skip(f"{root}/train is missing")
    splits = load_fer2013(root, ("train", "test"), progress=False)
    train, test = splits["train"], splits["test"]
    assert train.skipped == 0 and test.skipped == 0
    assert train.class_counts() == REAL_TRAIN and len(train) == 28709
    assert test.class_counts() == REAL_TEST and len(test) == 3589
    assert train.x.shape == (28709, 48, 48, 1) and train.x.dtype == np.uint8
    assert 60 < train.x.mean() < 200  # real faces, not blank
