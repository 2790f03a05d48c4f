"""`deepfer demo`: the Gradio page in a real headless Chromium, a real photo uploaded through
the page's file input, the faces it shows checked against `deepfer detect --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from broker_process import free_port
from chromium_cdp import Chromium, chromium_path
from cli_subprocess import deepfer, env_without_settings

from deepfer.edge.detectors import choose
from deepfer.edge.drawing import PALETTE


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


@pytest.fixture
def demo_server(tmp_path):
    pytest.importorskip("gradio")
    pytest.importorskip("matplotlib")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepfer", "demo", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env_without_settings(),
        )
        try:
            deadline = time.monotonic() + 90
            while not _answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"demo did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
