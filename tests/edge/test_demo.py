"""`deepfer demo`: the Gradio page in a real headless Chromium, a real photo uploaded through
the page's file input, the faces it shows checked against `deepfer detect --json`."""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker_process import free_port
from chromium_cdp import Chromium, chromium_path
from cli_subprocess import deepfer, env_without_settings

from deepfer.edge.detectors import choose
from deepfer.edge.drawing import PALETTE

NOT_SHOWN = "/tmp/"  # the server's own paths never reach the page


def test_missing_extra_is_clear(tmp_path):
    blocked = tmp_path / "blocked" / "gradio"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('no gradio here')\n")
    proc = deepfer("demo", env=env_without_settings(PYTHONPATH=str(blocked.parent)))
    assert proc.returncode == 2
    assert (
        'deepfer demo needs the demo extra (gradio is not installed): pip install "deepfer[demo]"'
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


class DemoProcess:
    """`deepfer demo` in a subprocess on a free port, with TMPDIR a folder of its own (where
    Gradio's files go unless the demo keeps them elsewhere); its output in ``log``."""

    def __init__(self, folder: Path, *args: str, port: int | None = None):
        """``port`` None: a free one chosen here; 0: the demo's own choice, ``url`` the
        address it prints."""
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmp = folder / "tmp"
        self.tmp.mkdir(parents=True)
        self.log = folder / "demo.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deepfer", "demo", "--port", str(self.port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env_without_settings(TMPDIR=str(self.tmp)),
            )
        deadline = time.monotonic() + 90
        while not (self.port and _answers(self.url)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"demo did not start: {self.output()[-3000:]}")
            if not self.port and (said := re.search(r"deepfer demo: (http://\S+)", self.output())):
                self.url = said[1]
                self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
            time.sleep(0.5)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, as systemd or `docker stop` would; the exit status."""
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"demo did not stop on SIGTERM: {self.output()[-2000:]}")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """One demo server for the module's page tests (starting one takes seconds)."""
    pytest.importorskip("gradio")
    pytest.importorskip("matplotlib")
    server = DemoProcess(tmp_path_factory.mktemp("demo"))
    yield server.url
    server.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_demo_binds_to_loopback_by_default():
    from deepfer.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.host == "127.0.0.1" and args.port == 7860


def test_detector_flag_is_used_not_ignored():
    """`deepfer demo --detector haar` was accepted and ignored (the page said blazeface)."""
    pytest.importorskip("matplotlib")
    from deepfer.cli import build_parser
    from deepfer.edge.commands import DEMO_FLAGS, _load_config
    from deepfer.edge.demo import DemoAnalyser

    args = build_parser().parse_args(["demo", "--detector", "haar"])
    config = _load_config(args, DEMO_FLAGS)
    assert config.detector.backend == "haar"
    assert "detector **haar**" in DemoAnalyser(config).describe()


@pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
def test_photo_uploaded_through_the_page_shows_its_faces(demo_server, media_dir, tmp_path):
    photo = media_dir / "12_angry_men.jpg"
    detect = deepfer("detect", photo, "--json")
    assert detect.returncode == 0, detect.stderr
    expected = json.loads(detect.stdout)
    assert len(expected) >= 5

    shot = tmp_path / "demo.png"
    with Chromium(tmp_path / "profile", size=(1280, 1000)) as browser:
        browser.goto(demo_server)
        browser.wait_for("document.querySelectorAll('#photo input[type=file]').length", 90)
        info = browser.evaluate("document.querySelector('#info').innerText")
        # the detector `deepfer detect` uses on photos (auto: the best installed)
        assert "deepfer_int8" in info and f"detector {choose('auto', photos=True)}" in info
        browser.set_file("#photo input[type=file]", photo)
        browser.wait_for(
            "(document.querySelector('#info').innerText || '').includes(' faces** in ') || "
            "(document.querySelector('#info').innerText || '').match(/\\d+ faces? in/)",
            90,
        )
        rows = browser.wait_for(  # the table (virtual rows of gridcells) fills after the text
            "(() => { const rows = {};"
            "for (const c of document.querySelectorAll('#table [role=gridcell][data-row]'))"
            "  (rows[c.dataset.row] ||= [])[+c.dataset.col] = c.innerText.trim();"
            "const out = Object.keys(rows).sort((a, b) => a - b).map(k => rows[k]);"
            "return out.length && out.every(r => r.length >= 7 && r[1]) ? out : null })()",
            30,
        )
        time.sleep(1.0)  # let the images paint
        info = browser.evaluate("document.querySelector('#info').innerText")
        browser.screenshot(shot)

    assert f"{len(expected)} faces in" in info
    # the page numbers faces left to right; detect lists them in the detector's order
    expected.sort(key=lambda f: (f["box"][0], f["box"][1]))
    assert [int(r[0]) for r in rows] == list(range(1, len(expected) + 1))
    assert [(r[1], [int(v) for v in r[3:7]]) for r in rows] == [
        (f["emotion"], f["box"]) for f in expected
    ]
    scores = [float(r[2]) for r in rows]
    assert scores == pytest.approx([f["score"] for f in expected], abs=1e-3)

    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (1000, 1280)
    right = img[:, 640:]  # the annotated photo is the right-hand image
    for emotion in {f["emotion"] for f in expected}:
        near = np.abs(right.astype(int) - PALETTE[emotion]).max(axis=-1) < 40
        assert near.sum() > 100, f"no {emotion} box drawn on the page"


# ---------------------------------------------------------------------------------------------
# Photos nobody tuned for (made here from the shared photos), through the analyser the page
# calls and through the page itself


def make_odd_photos(folder: Path, media: Path) -> dict[str, Path]:
    """Real photos in forms people upload: an EXIF-turned phone photo, a 16-bit PNG, a
    panorama wider than WebP allows, a PNG "bomb" (a small file of 121 megapixels), files that
    are no photo at all, a HEIC."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    justin = Image.open(media / "justin.jpg").convert("RGB")
    out = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the pixels turned 90 degrees clockwise
    out["exif6"] = folder / "phone.jpg"
    justin.transpose(Image.Transpose.ROTATE_90).save(out["exif6"], exif=exif, quality=92)
    out["grey16"] = folder / "grey16.png"
    grey = np.asarray(justin.convert("L"), np.uint16) * 257
    assert cv2.imwrite(str(out["grey16"]), grey)
    out["pano"] = folder / "pano.jpg"
    pano = np.full((300, 17000, 3), 60, np.uint8)
    pano[:, 8000 : 8000 + justin.width] = np.asarray(justin)[:300, :, ::-1]
    assert cv2.imwrite(str(out["pano"]), pano)
    out["bomb"] = folder / "bomb.png"
    out["bomb"].write_bytes(_png_bomb(11000, 11000))
    out["text"] = folder / "notes.jpg"
    out["text"].write_text("not a photo\n" * 20)
    out["empty"] = folder / "empty.png"
    out["empty"].write_bytes(b"")
    out["heic"] = folder / "IMG_0001.HEIC"
    out["heic"].write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    return out


def _png_bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    head = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def odd_photos(tmp_path_factory, media_dir) -> dict[str, Path]:
    pytest.importorskip("PIL")
    return make_odd_photos(tmp_path_factory.mktemp("odd"), media_dir)


@pytest.fixture(scope="module")
def analyser():
    pytest.importorskip("matplotlib")
    from deepfer.edge.config import load_config
    from deepfer.edge.demo import DemoAnalyser

    return DemoAnalyser(load_config(None, environ={}))


def test_odd_photos_are_read_as_deepfer_detect_reads_them(analyser, odd_photos, media_dir):
    from deepfer.edge.demo import SHOWN_MAX_SIDE

    justin = analyser.analyse(str(media_dir / "justin.jpg"))
    assert len(justin[2]) == 1
    # a phone photo turned by its orientation tag: shown and analysed upright, as the original
    shown, _, rows, text = analyser.analyse(
        {"path": str(odd_photos["exif6"]), "orig_name": "phone.jpg"}
    )
    assert shown.shape[:2] == justin[0].shape[:2] == (384, 381)
    assert [r[1] for r in rows] == [justin[2][0][1]]
    assert np.abs(np.subtract(rows[0][3:], justin[2][0][3:])).max() <= 4
    assert "phone.jpg" in text
    # 16-bit greyscale: the face (Gradio's own reading made it a white picture: no face)
    assert len(analyser.analyse(str(odd_photos["grey16"]))[2]) == 1
    # wider than WebP allows: found in the photo's pixels, shown shrunk
    shown, _, rows, text = analyser.analyse(str(odd_photos["pano"]))
    assert max(shown.shape[:2]) == SHOWN_MAX_SIDE and len(rows) == 1
    assert 8000 <= rows[0][3] < 8000 + 381, "the box is in the photo's own pixels"
    assert "shown at 2048x36" in text
    # refused from its header, before 363 MB of pixels are decoded
    t0 = time.monotonic()
    shown, chart, rows, text = analyser.analyse(str(odd_photos["bomb"]))
    assert time.monotonic() - t0 < 2 and shown is None and chart is None and rows == []
    assert "bomb.png: 11000x11000 is 121 megapixels; the demo takes photos of up to 120" in text
    for key, why in [
        ("text", "notes.jpg: cannot read this image (not an image, or corrupt)"),
        ("empty", "empty.png: cannot read this image (the file is empty)"),
        ("heic", "IMG_0001.HEIC: HEIC/HEIF photos"),
    ]:
        path = odd_photos[key]
        shown, chart, rows, text = analyser.analyse({"path": str(path), "orig_name": path.name})
        assert shown is None and rows == [] and why in text, text
        assert str(path.parent) not in text


@pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
def test_odd_uploads_through_the_page(demo_server, odd_photos, tmp_path):
    info = "document.querySelector('#info').innerText"
    with Chromium(tmp_path / "profile", size=(1280, 1000)) as browser:
        browser.goto(demo_server)
        browser.wait_for("document.querySelectorAll('#photo input[type=file]').length", 90)
        # not a photo: said on the page, naming the file as the user knows it
        browser.set_file("#photo input[type=file]", odd_photos["text"])
        said = browser.wait_for(f"{info}.includes('Cannot use this photo') && {info}", 60)
        assert "notes.jpg: cannot read this image (not an image, or corrupt)" in said
        assert NOT_SHOWN not in said and "preprocess" not in said
        # a phone photo whose tag says "turn me": the faces picture comes back upright
        browser.goto(demo_server)
        browser.wait_for("document.querySelectorAll('#photo input[type=file]').length", 90)
        browser.set_file("#photo input[type=file]", odd_photos["exif6"])
        said = browser.wait_for(f"/\\d+ faces? in/.test({info}) && {info}", 60)
        assert "1 face in" in said and "381x384 photo phone.jpg" in said
        assert browser.image_size("#faces img") == [381, 384]
        assert browser.page_errors() == []
        local = ("http://127.0.0.1:", "data:", "blob:")
        assert [u for u in browser.requested_urls() if not u.startswith(local)] == []


@pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
def test_webcam_picture_is_analysed(demo_server, tmp_path):
    """The webcam path: Chromium's fake camera (a test pattern, no face), the page's own
    buttons, the picture it takes analysed like an upload."""
    fake_camera = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    with Chromium(tmp_path / "profile", size=(1280, 1000), flags=fake_camera) as browser:

        def click(test: str, timeout: float = 30) -> None:
            """Clicks the photo panel's first button for which ``test`` (JS, on b) holds."""
            button = f"[...document.querySelectorAll('#photo button')].find(b => {test})"
            browser.wait_for(f"!!{button}", timeout)  # (an element comes back as {})
            browser.evaluate(f"{button}.click()")

        browser.goto(demo_server)
        click("b.getAttribute('aria-label') === 'Capture from camera'", 90)
        click("/Access Webcam/.test(b.innerText)")
        browser.wait_for("(document.querySelector('#photo video') || {}).readyState >= 2", 30)
        click("b.getAttribute('aria-label') === 'capture photo'")
        info = browser.wait_for(
            "(t => /\\d+ faces? in|Cannot/.test(t) && t)(document.querySelector('#info').innerText)",
            60,
        )
        assert re.search(r"0 faces in \d+ ms \(\d+x\d+ photo", info), info
        assert browser.page_errors() == []


def test_demo_off_loopback_warns_and_leaves_no_photo_behind(tmp_path, media_dir):
    """0.0.0.0 is warned about; an upload is kept in a private folder, and nothing is left
    after SIGTERM (Gradio's default: /tmp/gradio, readable by all, kept for ever)."""
    pytest.importorskip("gradio")
    pytest.importorskip("matplotlib")
    server = DemoProcess(tmp_path, "--host", "0.0.0.0")
    try:
        photo = (media_dir / "justin.jpg").read_bytes()
        boundary = "deepfer-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="justin.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            + photo
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            server.url + "gradio_api/upload",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            [stored] = json.loads(r.read())
        stored = Path(stored)
        assert stored.read_bytes() == photo
        [private] = list(server.tmp.iterdir())
        assert private.name.startswith("deepfer-demo-") and stored.is_relative_to(private)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        code = server.stop()
    assert code == 0, server.output()[-3000:]
    assert list(server.tmp.iterdir()) == []
    out = server.output()
    assert "demo listening on 0.0.0.0" in out and "faces included" in out
    assert "Traceback" not in out


def test_port_0_prints_the_port_it_listens_on(tmp_path):
    """--port 0: a free port, and the address printed is the one that answers (it printed
    ':0', and the demo then failed on Gradio's own call to that address)."""
    pytest.importorskip("gradio")
    pytest.importorskip("matplotlib")
    server = DemoProcess(tmp_path, port=0)
    try:
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}/"
        with urllib.request.urlopen(server.url, timeout=10) as r:
            assert r.status == 200 and b"DeepFER demo" in r.read()
    finally:
        code = server.stop()
    out = server.output()
    assert code == 0, out[-3000:]
    assert out.count("deepfer demo: http://") == 1 and ":0/" not in out
    assert "Traceback" not in out


def test_bad_port_and_busy_port_are_one_line_errors(capsys):
    """Said at once, before the model and Gradio load (checked in-process: no server starts)."""
    from deepfer.cli import main

    assert main(["demo", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err == "deepfer demo: error: demo: --port 70000: must be 0..65535\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "GRADIO_SERVER_PORT" not in err and out == ""
