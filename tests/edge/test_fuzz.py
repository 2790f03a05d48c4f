"""Bad input at scale (property-based, hypothesis): truncated and random sidecars, config files,
environment values, images and videos. Always a clear DeepFERError naming the file or key, or a
valid result; never another exception (a traceback), never a crash of the daemon loop."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from deepfer.edge.config import load_config  # noqa: E402
from deepfer.edge.config.sections import key_types, sections  # noqa: E402
from deepfer.edge.errors import ConfigError, DeepFERError, ModelInfoError  # noqa: E402
from deepfer.edge.model.sidecar import load_model_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = (ROOT / "deploy" / "deepfer.toml").read_bytes()
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


# -- the sidecar ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sidecar_text(tiny_tflite_model) -> bytes:
    return tiny_tflite_model.with_suffix(".json").read_bytes()


def check_sidecar(folder: Path, model: Path, data: bytes) -> None:
    side = folder / "m.json"
    side.write_bytes(data)
    try:
        info = load_model_info(folder / "m.tflite")
    except ModelInfoError as exc:
        assert str(side) in str(exc), exc
    else:
        assert info.labels and len(info.input_size) == 2
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in info.input_size)


@FUZZ
@given(fraction=st.floats(0, 1), junk=st.binary(max_size=40))
def test_sidecar_truncated_or_with_junk(tmp_path, tiny_tflite_model, sidecar_text, fraction, junk):
    check_sidecar(tmp_path, tiny_tflite_model, cut(sidecar_text, fraction) + junk)


@FUZZ
@given(key=st.sampled_from(["labels", "input", "trained_on", "metrics", "name", "size"]),
       value=json_values)  # fmt: skip
def test_sidecar_keys_with_random_values(tmp_path, tiny_tflite_model, sidecar_text, key, value):
    raw = json.loads(sidecar_text)
    if key == "size":
        raw["input"] = {**raw["input"], "size": value}
    else:
        raw[key] = value
    check_sidecar(tmp_path, tiny_tflite_model, json.dumps(raw).encode())


def test_sidecar_nested_too_deep(tmp_path, tiny_tflite_model):
    check_sidecar(tmp_path, tiny_tflite_model, b"[" * 100_000)


# -- the config file and the environment ---------------------------------------------------------


def check_config(path: Path | None = None, environ: dict | None = None) -> None:
    try:
        load_config(path, environ=environ or {})
    except ConfigError as exc:
        text = str(exc)
        assert text.strip(), "empty message"
        if path is not None and "env DEEPFER_" not in text:
            assert str(path) in text, text


@FUZZ
@given(fraction=st.floats(0, 1), junk=st.binary(max_size=30))
def test_config_file_truncated_or_with_junk(tmp_path, fraction, junk):
    path = tmp_path / "deepfer.toml"
    path.write_bytes(cut(EXAMPLE_TOML, fraction) + junk)
    check_config(path)


toml_scalars = (
    st.integers(-(2**70), 2**70).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(f), repr(f))
    )
    | st.booleans().map(lambda b: "true" if b else "false")
    | st.text(max_size=20).map(lambda t: json.dumps(t, ensure_ascii=False))
    | st.lists(st.integers(-5, 5), max_size=3).map(json.dumps)
)
section_keys = [(s, k) for s in sections() for k in key_types(s)]


@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(section_keys), toml_scalars), max_size=5))
def test_config_keys_with_random_values(tmp_path, entries):
    by_section: dict[str, dict[str, str]] = {}
    for (section, key), value in entries:
        by_section.setdefault(section, {})[key] = value
    text = "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for section, keys in by_section.items()
    )
    path = tmp_path / "deepfer.toml"
    path.write_text(text)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        if "not valid TOML" in str(exc):  # a value TOML itself refuses: the file and line
            assert str(path) in str(exc) and "line" in str(exc), str(exc)
        else:  # names the key (section.key) whose value is wrong; the file where it came
            # from (a check across keys may name a default, e.g. reopen_max_s < reopen_min_s)
            assert any(f"{s}.{k}" in str(exc) for (s, k), _ in entries), str(exc)


@FUZZ
@given(entries=st.dictionaries(st.sampled_from(section_keys),
                               st.text(string.printable, max_size=12), max_size=4))  # fmt: skip
def test_environment_values_random(entries):
    environ = {f"DEEPFER_{s.upper()}_{k.upper()}": v for (s, k), v in entries.items()}
    try:
        load_config(None, environ=environ)
    except ConfigError as exc:
        assert any(name in str(exc) for name in environ), str(exc)


# -- images and videos ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(media_dir) -> bytes:
    return (media_dir / "justin.jpg").read_bytes()


@pytest.fixture(scope="module")
def detector(tiny_tflite_model):
    from deepfer.edge.detect_files import FileDetector

    config = load_config(None, environ={}, overrides={"model.path": str(tiny_tflite_model)})
    return FileDetector(config)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    fraction=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
)
def test_image_reader_truncated_or_corrupt(tmp_path, detector, photo, fraction, flips):
    data = bytearray(cut(photo, fraction))
    for where, byte in flips:
        if data:
            data[int(where * (len(data) - 1))] = byte
    path = tmp_path / "x.jpg"
    path.write_bytes(bytes(data))
    try:
        faces = detector.image(path, None, None)
    except DeepFERError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(faces, list)


@pytest.fixture(scope="module")
def clip(media_dir) -> bytes:
    return (media_dir / "woman2.mp4").read_bytes()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    fraction=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
def test_video_reader_truncated_or_corrupt(tmp_path, clip, fraction, flips):
    from deepfer.edge.capture.reader import FrameReader
    from deepfer.edge.capture.sources import make_source

    data = bytearray(cut(clip, fraction))
    for where, byte in flips:
        if data:
            data[int(where * (len(data) - 1))] = byte
    path = tmp_path / "x.mp4"
    path.write_bytes(bytes(data))
    try:
        source = make_source(str(path))
        reader = FrameReader(source)
        reader.open()
        for n, frame in enumerate(reader):
            assert frame.image.ndim == 3
            if n >= 60:
                break
        source.close()
    except DeepFERError as exc:
        assert str(path) in str(exc)


def test_the_daemon_runs_through_a_folder_of_broken_images(tmp_path, photo, tiny_tflite_model):
    """Truncated, empty and random files among good images: skipped with a warning, exit 0."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(photo)
    (folder / "b_half.jpg").write_bytes(cut(photo, 0.5))
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_random.jpg").write_bytes(bytes(range(256)) * 4)
    (folder / "e_good.jpg").write_bytes(photo)
    shutil.copy(folder / "a_good.jpg", folder / "f_good.jpg")
    proc = subprocess.run(
        [sys.executable, "-m", "deepfer", "run", "--source", str(folder), "--model",
         str(tiny_tflite_model), "--device-id", "fuzz"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "c_empty.png: cannot read this image (the file is empty); skipped" in proc.stderr
