"""edge/outputs/preview/ over real HTTP on a free loopback port, and the page in headless Chromium."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from chromium_cdp import HEADLESS_FLAGS, Chromium, chromium_path
from cli_subprocess import env_without_settings

from deepfer.edge.capture.frame import Frame
from deepfer.edge.drawing import PALETTE
from deepfer.edge.errors import OutputError
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import EventBuilder, validate_event
from deepfer.edge.outputs.base import Sink
from deepfer.edge.outputs.preview.server import PreviewServer
from deepfer.edge.pipeline import Face, FrameResult

BOX = (220, 130, 200, 200)
FACE = {"box": BOX, "emotion": "happy", "score": 0.87, "track_id": 3}


def scene(shade: int = 70) -> np.ndarray:
    img = np.full((480, 640, 3), shade, np.uint8)
    cv2.circle(img, (320, 230), 90, (150, 170, 200), -1)
    return img


def make_events() -> list[dict]:
    builder = EventBuilder("pi-kitchen", "deepfer-edge_int8")
    scores = dict.fromkeys(LABELS, 0.02) | {"happy": 0.87}
    return [
        builder.event("start", 3, "happy", 0.87, scores, BOX),
        builder.event("change", 3, "surprise", 0.6, scores | {"surprise": 0.6}, BOX),
    ]


@pytest.fixture
def preview():
    server = PreviewServer(port=0, device_id="pi-kitchen", model="deepfer-edge_int8").start()
    server.update(scene(), [FACE], make_events())
    yield server
    server.close()


def get(url: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers["Content-Type"], r.read()


def open_stream(server: PreviewServer) -> http.client.HTTPResponse:
    """GET /stream.mjpg (5 s socket timeout), checked up to the first boundary."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    assert resp.fp.readline() == b"--frame\r\n"
    return resp


def read_part(resp: http.client.HTTPResponse) -> bytes:
    """The JPEG of the next part, read through to the boundary that ends it."""
    headers = {}
    while (line := resp.fp.readline().strip()) != b"":
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    jpeg = resp.fp.read(int(headers["content-length"]))
    assert resp.fp.readline() == b"\r\n"
    assert resp.fp.readline() == b"--frame\r\n"  # the next boundary comes with the part
    return jpeg


def test_page_references_the_stream_and_says_it_shows_faces(preview):
    status, ctype, body = get(preview.url)
    page = body.decode()
    assert status == 200 and ctype.startswith("text/html")
    assert 'src = "/stream.mjpg"' in page and "/frame.jpg" in page and "/events.json" in page
    assert "pi-kitchen" in page and "deepfer-edge_int8" in page
    assert "faces included" in page
    assert "http://" not in page and "https://" not in page  # no external assets


def test_frame_jpg_is_the_annotated_frame(preview):
    status, ctype, body = get(preview.url + "frame.jpg")
    assert status == 200 and ctype == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    x, y, w, _ = BOX
    top_edge = img[y - 1 : y + 2, x + 20 : x + w - 20].reshape(-1, 3).astype(int)
    assert np.abs(top_edge - PALETTE["happy"]).max(axis=1).min() < 40  # JPEG is lossy


def test_stream_sends_complete_jpeg_parts(preview):
    resp = open_stream(preview)
    try:
        first_jpeg = read_part(resp)
        first = cv2.imdecode(np.frombuffer(first_jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert first.shape == (480, 640, 3)
        assert preview.stream_clients == 1
        t0 = time.monotonic()
        assert read_part(resp) == first_jpeg  # no new frame: the last one again, after ~1 s
        assert 0.5 < time.monotonic() - t0 < 4
        assert preview.frames_encoded == 1
        preview.update(scene(shade=140), [FACE])  # a new frame: the stream sends the next part
        second = cv2.imdecode(np.frombuffer(read_part(resp), np.uint8), cv2.IMREAD_COLOR)
        assert second.shape == (480, 640, 3)
        assert abs(int(second[5, 5].mean()) - 140) < 10
    finally:
        resp.close()


def test_events_json_newest_first_with_faces_now(preview):
    status, ctype, body = get(preview.url + "events.json")
    data = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert [e["type"] for e in data["events"]] == ["change", "start"]
    assert all(validate_event(e, LABELS) == [] for e in data["events"])
    assert data["faces"] == [{"track_id": 3, "emotion": "happy", "score": 0.87, "box": list(BOX)}]
    assert data["device_id"] == "pi-kitchen" and data["frame_seq"] == 1
    preview.add_events([{"type": "end", "track_id": 3, "emotion": "happy"}])
    data = json.loads(get(preview.url + "events.json?limit=1")[2])
    assert [e["type"] for e in data["events"]] == ["end"]


def test_events_json_is_strict_json_even_with_a_nan_score(preview):
    """A NaN score (a broken model) made events.json invalid JSON: the page's JSON.parse
    refused it, the events went missing and the page said the preview had stopped."""
    preview.add_events([{"type": "change", "track_id": 3, "score": float("nan")}])
    preview.update(scene(), [dict(FACE, score=float("inf"))])

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    data = json.loads(get(preview.url + "events.json")[2], parse_constant=refuse)
    assert data["events"][0] == {"type": "change", "track_id": 3, "score": None}
    assert data["faces"][0]["score"] is None


def test_healthz_and_unknown_paths(preview):
    status, _, body = get(preview.url + "healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError) as err:
        get(preview.url + "nope")
    assert err.value.code == 404


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/healthz", "application/json"),
        ("/", "text/html; charset=utf-8"),
        ("/frame.jpg", "image/jpeg"),
        ("/stream.mjpg", "multipart/x-mixed-replace; boundary=frame"),
        ("/nope", "text/plain; charset=utf-8"),
    ],
)
def test_head_requests_get_the_headers_of_get_without_a_body(preview, path, ctype):
    """`curl -I` and uptime monitors ask with HEAD (answered 501 before)."""
    parts = urlsplit(preview.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):  # the server ends the connection after the headers
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0].split()[1] == ("404" if path == "/nope" else "200")
    assert headers["Content-Type"] == ctype
    assert headers["Cache-Control"].startswith("no-store")
    assert body == b""
    assert preview.stream_clients == 0


def test_nothing_is_encoded_until_someone_watches():
    with PreviewServer(port=0) as server:
        with pytest.raises(urllib.error.HTTPError) as err:
            get(server.url + "frame.jpg")
        assert err.value.code == 503  # no frame yet
        for shade in range(10):
            server.update(scene(shade), [FACE])
        assert server.frames_encoded == 0
        get(server.url + "frame.jpg")
        get(server.url + "frame.jpg")  # the same frame: served from the cache
        assert server.frames_encoded == 1


def test_as_a_sink_the_colour_image_is_made_only_when_someone_watches():
    server = PreviewServer(port=0)
    assert isinstance(server, Sink)
    with server:
        grey = np.full((120, 160), 90, np.uint8)
        frames = [Frame(gray=grey.copy(), size=(160, 120)) for _ in range(5)]
        face = Face((40, 30, 50, 50), "happy", 0.87, {"happy": 0.87}, 3)
        for frame in frames:
            server.on_frame(FrameResult(frame, [face]))
        server.publish_event(make_events()[0])
        assert all(f.image is None for f in frames)  # nobody watches: no colour, no JPEG
        assert server.frames_encoded == 0
        status, _, body = get(server.url + "frame.jpg")
        assert status == 200 and frames[-1].image is not None  # made for the viewer, once
        assert all(f.image is None for f in frames[:-1])
        data = json.loads(get(server.url + "events.json")[2])
        assert data["faces"] == [{"track_id": 3, "emotion": "happy", "score": 0.87,
                                  "box": [40, 30, 50, 50]}]  # fmt: skip
        assert [e["type"] for e in data["events"]] == ["start"]
        assert server.stats() == {"clients": 0, "jpegs": 1}


def test_the_page_is_a_static_file():
    from importlib import resources

    page = resources.files("deepfer.edge.outputs.preview") / "static" / "index.html"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "__TITLE__" in text


def test_stream_respects_max_fps():
    with PreviewServer(port=0, max_fps=4) as server:
        server.update(scene(), [FACE])
        resp = open_stream(server)
        read_part(resp)
        t0 = time.monotonic()
        parts = 0
        while time.monotonic() - t0 < 1.0:
            server.update(scene(), [FACE])  # the pipeline runs much faster than max_fps
            read_part(resp)
            parts += 1
        resp.close()
        assert parts <= 6, f"{parts} parts in 1 s at max_fps=4"


def test_client_disconnects_are_silent_and_close_ends_streams(capfd):
    server = PreviewServer(port=0, max_fps=50).start()
    server.update(scene(), [FACE])
    gone = open_stream(server)
    read_part(gone)
    gone.close()  # drops the connection mid-stream
    deadline = time.monotonic() + 5
    while server.stream_clients and time.monotonic() < deadline:  # writes find the peer gone
        server.update(scene(), [FACE])
        time.sleep(0.02)
    assert server.stream_clients == 0
    live = open_stream(server)
    read_part(live)
    t0 = time.monotonic()
    server.close()
    assert time.monotonic() - t0 < 3
    assert server.stream_clients == 0
    with pytest.raises(OSError):  # the port is released
        get(server.url + "healthz", timeout=1)
    live.close()
    assert "Traceback" not in capfd.readouterr().err
    server.close()  # twice is fine


def test_non_loopback_bind_warns(caplog):
    with (
        caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.preview.server"),
        PreviewServer(host="0.0.0.0", port=0) as server,
    ):
        assert server.url.startswith("http://127.0.0.1:")
        assert get(server.url + "healthz")[0] == 200
    assert "faces included" in caplog.text
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="deepfer.edge.outputs.preview.server"),
        PreviewServer(port=0),
    ):
        pass
    assert caplog.text == ""


def test_busy_port_and_bad_settings_are_clear():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=f"preview: cannot listen on 127.0.0.1:{port}"):
            PreviewServer(port=port).start()
    with pytest.raises(ValueError, match="jpeg_quality"):
        PreviewServer(jpeg_quality=0)
    with pytest.raises(ValueError, match="max_fps"):
        PreviewServer(max_fps=0)


@pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
@pytest.mark.parametrize("mode", ["frames", "stream"])
def test_page_renders_the_annotated_frame_in_headless_chromium(preview, tmp_path, caplog, mode):
    shot = tmp_path / "preview.png"
    if mode == "frames":
        # ?mode=frames: the page polls /frame.jpg, so the page "finishes loading" and the
        # screenshot is taken after 3 s of virtual time.
        url, wait = preview.url + "?mode=frames", "--virtual-time-budget=3000"
    else:
        # the real page: an MJPEG stream never finishes loading, but the page "loads" once
        # the first frame is drawn; --timeout is only a backstop.
        url, wait = preview.url, "--timeout=8000"
    cmd = [
        chromium_path(),
        *HEADLESS_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1000,700",
        wait,
        url,
    ]
    with caplog.at_level(logging.DEBUG, logger="deepfer.edge.outputs.preview.server"):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert shot.exists(), f"no screenshot (rc {result.returncode}): {result.stderr[-2000:]}"
    if mode == "stream":  # the MJPEG itself was drawn, not the page's /frame.jpg fallback
        assert "GET /stream.mjpg" in caplog.text and "GET /frame.jpg" not in caplog.text
    else:
        assert "GET /frame.jpg" in caplog.text
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (700, 1000)
    near_box_colour = np.abs(img.astype(int) - PALETTE["happy"]).max(axis=-1) < 40
    assert near_box_colour.sum() > 500, "the drawn face box is not on the page"
    ys, xs = np.nonzero(near_box_colour)
    assert xs.max() < 700, "the box colour should only appear in the image, left of the events"


needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
STATUS = "document.getElementById('status').textContent"


@needs_chromium
def test_page_says_when_frames_stop_and_when_the_preview_is_gone(tmp_path):
    """A camera that stalls or vanishes: the page stops saying "live"; a stopped preview:
    the page says so. No JavaScript error on the way."""
    server = PreviewServer(port=0).start()
    try:
        server.update(scene(), [FACE])
        server.add_events([{"type": "change", "track_id": 3, "score": float("nan")}, {}])
        with Chromium(tmp_path / "profile", size=(1000, 700)) as browser:
            browser.goto(server.url)
            assert browser.wait_for(f"{STATUS} === 'live'", 20)
            rows = browser.evaluate("document.getElementById('events').innerText")
            assert "change" in rows and "undefined" not in rows
            said = browser.wait_for(f"{STATUS}.startsWith('no new frame for') && {STATUS}", 20)
            assert re.fullmatch(r"no new frame for \d+ s", said)
            server.update(scene(140), [FACE])  # the camera is back
            assert browser.wait_for(f"{STATUS} === 'live'", 20)
            server.close()
            assert browser.wait_for(f"{STATUS}.startsWith('disconnected')", 20)
            assert browser.page_errors() == []
    finally:
        server.close()


@needs_chromium
def test_view_keeps_the_page_after_a_short_source_ends(media_dir, tiny_tflite_model, tmp_path):
    """`deepfer view --source photo.jpg` at a terminal: the photo is done in a fraction of a
    second, and the page (opened later, as a browser is) still shows it and says the source
    ended, until Ctrl-C, which exits 0 at once. (Before, the server was gone before the
    browser came: connection refused.)"""
    main, child = pty.openpty()  # stderr a terminal, as for a person
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepfer", "view", "--source", str(media_dir / "justin.jpg"),
         "--model", str(tiny_tflite_model), "--port", "0", "--no-browser"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child,
        env=env_without_settings(),
    )  # fmt: skip
    os.close(child)
    try:
        said = b""
        deadline = time.monotonic() + 60
        while b"keeps its last frame" not in said and time.monotonic() < deadline:
            try:
                said += os.read(main, 4096)
            except OSError:  # the child closed the terminal: it exited
                break
        text = said.decode(errors="replace")
        assert "keeps its last frame" in text, text[-2000:]
        url = re.search(r"preview: (http://127\.0\.0\.1:\d+/)", text).group(1)
        health = json.loads(get(url + "healthz")[2])
        assert health["frames"] == 1 and health["ended"].startswith("end of ")
        with Chromium(tmp_path / "profile", size=(1000, 700)) as browser:
            browser.goto(url)
            status = browser.wait_for(f"{STATUS}.includes('last frame shown') && {STATUS}", 20)
            assert status == f"end of {media_dir / 'justin.jpg'} (last frame shown)"
            assert browser.image_size("#live", 20) == [381, 384]
            assert browser.page_errors() == []
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
        rest = b""
        with contextlib.suppress(OSError):  # (EIO once the child's end is closed)
            while chunk := os.read(main, 4096):
                rest += chunk
        assert b"Traceback" not in said + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
