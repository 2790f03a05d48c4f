"""The live preview: a tiny web server with the annotated stream (MJPEG) and the latest events.

Standard library only (``http.server`` in a daemon thread) plus OpenCV for JPEG,
so it costs nothing extra on a Pi. It is a :class:`~deepfer.edge.outputs.base.Sink`: the
pipeline thread hands it every frame (:meth:`PreviewServer.on_frame`, which only stores
references) and every event. The colour image, drawing and JPEG encoding are made in the
HTTP threads, on demand, at most ``max_fps`` times a second, and never while no one is
watching. The page is ``static/index.html``.

Routes: ``/`` (the page), ``/stream.mjpg`` (multipart/x-mixed-replace), ``/frame.jpg``
(latest frame), ``/events.json`` (latest events, newest first, and the faces now),
``/healthz``. After :meth:`PreviewServer.finish` (the source ended) every route goes on
serving the last frame, and the page says why nothing moves.

The page shows faces: the server binds to 127.0.0.1 unless told otherwise, and
logs a warning when bound to an address other machines can reach.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import cv2
import numpy as np

from deepfer.edge.drawing import draw_faces
from deepfer.edge.errors import OutputError
from deepfer.edge.messages import face_state
from deepfer.edge.netaddr import DEFAULT_HOST, is_loopback
from deepfer.edge.outputs.base import Sink

__all__ = ["HeldOpen", "PreviewServer"]

log = logging.getLogger(__name__)

BOUNDARY = "frame"
#: Seconds without a new frame after which a stream repeats the last one.
KEEPALIVE_S = 1.0
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _State:
    """What the pipeline thread and the HTTP threads share; lives on the server instance."""

    def __init__(self, jpeg_quality: int, max_fps: float, max_events: int, info: dict[str, Any]):
        self.jpeg_quality = jpeg_quality
        self.min_interval = 1.0 / max_fps
        self.info = info
        self.cond = threading.Condition()  # guards everything below except the JPEG cache
        self.frame: Any = None  # a BGR array, or a Frame whose bgr() is made when needed
        self.faces: tuple[Any, ...] = ()
        self.seq = 0  # grows by one per update()
        self.frame_time = 0.0
        self.events: deque[Any] = deque(maxlen=max_events)
        self.clients = 0  # open /stream.mjpg connections
        self.ended: str | None = None  # why no more frames will come (the source ended)
        self.closed = False
        self.stop = threading.Event()
        self.encode_lock = threading.Lock()  # guards the JPEG cache below
        self.jpeg: bytes | None = None
        self.jpeg_seq = 0
        self.last_encode = float("-inf")
        self.encoded = 0  # JPEGs made so far

    def update(self, frame: Any, faces: Iterable[Any], events: Iterable[Any]) -> None:
        faces = tuple(faces)
        with self.cond:
            self.frame = frame
            self.faces = faces
            self.seq += 1
            self.frame_time = time.time()
            self.events.extend(events)
            self.cond.notify_all()

    def add_events(self, events: Iterable[Any]) -> None:
        with self.cond:
            self.events.extend(events)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.stop.set()
            self.cond.notify_all()

    def jpeg_after(self, after: int, timeout: float | None) -> tuple[bytes | None, int]:
        """A JPEG of a frame newer than ``after`` (waiting up to ``timeout`` for one).

        Returns ``(None, after)`` on timeout or close. A cached JPEG is shared by every
        client; a new one is made only when a newer frame exists and ``max_fps`` allows.
        """
        with self.cond:
            if not self.cond.wait_for(lambda: self.closed or self.seq > after, timeout):
                return None, after
            if self.closed:
                return None, after
        with self.encode_lock:
            if self.jpeg is not None and self.jpeg_seq > after:
                with self.cond:
                    current = self.jpeg_seq == self.seq
                if current or time.monotonic() - self.last_encode < self.min_interval:
                    return self.jpeg, self.jpeg_seq
            else:  # the client has seen the cached one: wait until max_fps allows a new one
                wait = self.last_encode + self.min_interval - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return None, after
            with self.cond:
                frame, faces, seq = self.frame, self.faces, self.seq
            image = frame.bgr() if hasattr(frame, "bgr") else frame
            annotated = draw_faces(image, faces)
            ok, buf = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError("preview: OpenCV could not encode the frame as JPEG")
            self.jpeg, self.jpeg_seq = buf.tobytes(), seq
            self.last_encode = time.monotonic()
            self.encoded += 1
            return self.jpeg, self.jpeg_seq

    def snapshot(self, limit: int) -> dict[str, Any]:
        with self.cond:
            events = list(self.events)[::-1][: max(limit, 0)]
            faces, seq, frame_time, clients = self.faces, self.seq, self.frame_time, self.clients
            ended = self.ended
        return {
            **self.info,
            "frame_seq": seq,
            "frame_age_s": round(time.time() - frame_time, 3) if seq else None,
            "ended": ended,
            "stream_clients": clients,
            "faces": [face_state(f) for f in faces],
            "events": events,
        }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (null): the page's
    ``JSON.parse`` refuses them, and the whole list of events went missing."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int, state: _State, page: bytes):
        self.address_family = family
        self.state = state
        self.page = page
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a box without DNS.
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            with contextlib.suppress(OSError):  # "::" listens on IPv4 too where allowed
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            log.debug("preview: %s went away", client_address)
        else:  # a bug or a bad frame: say so, but keep serving (and keep the pipeline running)
            log.warning("preview: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"
    server_version = "deepfer-preview"
    sys_version = ""
    timeout = 15  # seconds a client may stall a write before it is dropped

    head = False  # a HEAD request: the same status and headers as GET, no body

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        """For health checks and monitors (``curl -I``), which got 501 before."""
        self.head = True
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path, _, query = self.path.partition("?")
        routes = {
            "/": self._page,
            "/index.html": self._page,
            "/stream.mjpg": self._stream,
            "/frame.jpg": self._frame,
            "/events.json": self._events,
            "/healthz": self._health,
        }
        route = routes.get(path)
        try:
            if route is None:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
            else:
                route(parse_qs(query))
        except _DISCONNECTS:
            pass  # the client went away: nothing to report

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        log.debug("preview %s: " + format, self.address_string(), *args)

    def _headers(self, status: int, content_type: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store, no-cache, must-revalidate, private")
        self.send_header("Pragma", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self._headers(status, content_type, len(body))
        if not self.head:
            self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        try:
            text = json.dumps(data, default=_json_default, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN or infinity (a broken score): JSON has no such number
            text = json.dumps(
                _finite(json.loads(json.dumps(data, default=_json_default))),
                separators=(",", ":"),
            )
        body = text.encode()
        self._send(status, body, "application/json")

    def _page(self, query: dict[str, list[str]]) -> None:
        self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")

    def _frame(self, query: dict[str, list[str]]) -> None:
        jpeg, _ = self.server.state.jpeg_after(0, timeout=0)
        if jpeg is None:
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain; charset=utf-8"
            )
        else:
            self._send(HTTPStatus.OK, jpeg, "image/jpeg")

    def _stream(self, query: dict[str, list[str]]) -> None:
        state = self.server.state
        self._headers(HTTPStatus.OK, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        if self.head:
            return
        with state.cond:
            state.clients += 1
        try:
            # Each part ends with the next boundary. Browsers draw a part only once the next
            # one begins, so when no new frame comes for KEEPALIVE_S the last one is sent
            # again: a still scene shows up, and a client that went away is noticed.
            self.wfile.write(f"--{BOUNDARY}\r\n".encode())
            seen, last = 0, None
            while not state.closed:
                jpeg, seq = state.jpeg_after(seen, timeout=KEEPALIVE_S)
                if jpeg is None:
                    if last is None or state.closed:
                        continue
                    jpeg = last
                seen, last = seq, jpeg
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                self.wfile.flush()
        finally:
            with state.cond:
                state.clients -= 1
                state.cond.notify_all()

    def _events(self, query: dict[str, list[str]]) -> None:
        try:
            limit = int(query.get("limit", ["50"])[0])
        except ValueError:
            self._json({"error": "limit must be a whole number"}, HTTPStatus.BAD_REQUEST)
            return
        self._json(self.server.state.snapshot(limit))

    def _health(self, query: dict[str, list[str]]) -> None:
        snap = self.server.state.snapshot(0)
        self._json(
            {
                "status": "ok",
                "frames": snap["frame_seq"],
                "frame_age_s": snap["frame_age_s"],
                "ended": snap["ended"],
                "stream_clients": snap["stream_clients"],
            }
        )


class PreviewServer(Sink):
    """Serves the annotated live stream and the latest events over HTTP; a Sink.

    >>> with PreviewServer(port=0) as preview:      # doctest: +SKIP
    ...     print(preview.url)
    ...     preview.on_frame(result)                # a FrameResult, from the pipeline thread
    ...     preview.publish_event(event)            # or update(frame, faces, events)

    It keeps a reference to the frame: give each call its own array or Frame
    (``cv2.VideoCapture.read()`` and picamera2 already do) and do not write into it afterwards.
    """

    name = "preview"
    wants_pixels = True

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        jpeg_quality: int = 80,
        max_fps: float = 15,
        max_events: int = 50,
        device_id: str | None = None,
        model: str | None = None,
        title: str = "DeepFER live preview",
    ):
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"preview jpeg_quality must be 1..100, got {jpeg_quality!r}")
        if not float(max_fps) > 0:
            raise ValueError(f"preview max_fps must be above 0, got {max_fps!r}")
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"preview port must be 0..65535, got {port!r}")
        if int(max_events) < 1:
            raise ValueError(f"preview max_events must be at least 1, got {max_events!r}")
        self.host = str(host).strip().strip("[]") or DEFAULT_HOST
        self.port = int(port)
        self.title = title
        info = {"device_id": device_id, "model": model, "title": title}
        self._state = _State(int(jpeg_quality), float(max_fps), int(max_events), info)
        self._page = render_page(title, device_id, model, float(max_fps)).encode()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> PreviewServer:
        """Bind and serve in a daemon thread (port 0 picks a free port). Returns self."""
        if self._server is not None:
            raise RuntimeError("preview server already started")
        if self._state.closed:
            raise RuntimeError("preview server was closed; make a new one")
        try:
            infos = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family = infos[0][0]
            self._server = _HTTPServer((self.host, self.port), family, self._state, self._page)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OutputError(
                f"preview: cannot listen on {self._hostport(self.port)}: {reason}"
            ) from exc
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="deepfer-preview",
            daemon=True,
        )
        self._thread.start()
        if is_loopback(self.host):
            log.info("preview on %s (this machine only)", self.url)
        else:
            log.warning(
                "preview bound to %s: anyone who can reach this machine on port %d sees the "
                "live camera, faces included; bind to 127.0.0.1 and use an SSH tunnel instead "
                "(ssh -L %d:localhost:%d ...) unless this network is trusted",
                self._hostport(self.port),
                self.port,
                self.port,
                self.port,
            )
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Stop serving: end the streams, stop the server thread, release the port."""
        self._state.close()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        with self._state.cond:
            self._state.cond.wait_for(
                lambda: self._state.clients == 0, max(deadline - time.monotonic(), 0)
            )

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- feeding -----------------------------------------------------------------------------
    def update(self, frame: Any, faces: Iterable[Any] = (), events: Iterable[Any] = ()) -> None:
        """The latest frame (a BGR array or a Frame), its faces (objects or dicts with box,
        emotion, score, track_id) and any new events (cheap: stores references)."""
        self._state.update(frame, faces, events)

    def add_events(self, events: Iterable[Any]) -> None:
        """New events without a new frame."""
        self._state.add_events(events)

    def finish(self, reason: str) -> None:
        """No more frames will come (``reason``: e.g. the source ended): the page keeps the
        last frame and says so, until :meth:`close`."""
        with self._state.cond:
            self._state.ended = str(reason)
            self._state.cond.notify_all()

    def on_frame(self, result: Any) -> None:
        """Sink: a FrameResult (its Frame is kept; its colour image is made only if watched)."""
        self._state.update(result.frame, result.faces, ())

    def publish_event(self, event: dict[str, Any]) -> None:
        """Sink: an event for the page's list."""
        self._state.add_events((event,))

    def stats(self) -> dict[str, Any]:
        return {"clients": self.stream_clients, "jpegs": self.frames_encoded}

    # -- introspection -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """A URL this machine can open (0.0.0.0 -> 127.0.0.1, :: -> [::1])."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{_bracket(host)}:{self.port}/"

    @property
    def stream_clients(self) -> int:
        """Open ``/stream.mjpg`` connections."""
        with self._state.cond:
            return self._state.clients

    @property
    def frames_encoded(self) -> int:
        """JPEGs made so far (stays 0 while no one watches)."""
        return self._state.encoded

    def _hostport(self, port: int) -> str:
        return f"{_bracket(self.host)}:{port}"


class HeldOpen(Sink):
    """Hands everything to ``sink`` but leaves it open when closed, for a caller that closes
    it itself later: ``deepfer view`` keeps the page (and its last frame) after the daemon
    has ended with its source."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.name = sink.name
        self.wants_pixels = sink.wants_pixels

    def __getattr__(self, name: str) -> Any:  # url, stream_clients...
        return getattr(self.sink, name)

    def start(self) -> None:
        self.sink.start()

    def on_frame(self, result: Any) -> None:
        self.sink.on_frame(result)

    def publish_event(self, event: dict[str, Any]) -> None:
        self.sink.publish_event(event)

    def stats(self) -> dict[str, Any]:
        return self.sink.stats()

    def close(self) -> None:
        """Nothing: the owner closes the sink."""


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def render_page(title: str, device_id: str | None, model: str | None, max_fps: float = 15) -> str:
    """The preview page (``static/index.html``: inline CSS and JS, no external assets) with
    its title, device and model filled in."""
    page = (resources.files(__package__) / "static" / "index.html").read_text(encoding="utf-8")
    meta = " · ".join(
        html.escape(f"{k} {v}") for k, v in (("device", device_id), ("model", model)) if v
    )
    period_ms = max(int(1000 / max_fps), 50)
    return (
        page.replace("__TITLE__", html.escape(title))
        .replace("__META__", meta)
        .replace("__PERIOD_MS__", str(period_ms))
    )
