"""Drive headless Chromium from a test: the DevTools protocol over a pipe (stdlib only).

``chromium --remote-debugging-pipe`` reads commands on fd 3 and writes replies and events on
fd 4, each a JSON message ended by a NUL byte. Enough for what a person does on a page:
open it, wait for something, put a file into a file input, read the page, take a screenshot;
and what a person would see in the developer tools: the page's JavaScript errors and
console errors (:meth:`Chromium.page_errors`) and every URL it asked for
(:meth:`Chromium.requested_urls`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def _move_fds(read_fd: int, write_fd: int) -> None:
    """In the child: the pipe ends on fds 3 (commands in) and 4 (replies out)."""
    r, w = os.dup(read_fd), os.dup(write_fd)  # fresh numbers above 4: no clobbering
    os.dup2(r, 3)
    os.dup2(w, 4)
    os.set_inheritable(3, True)
    os.set_inheritable(4, True)


#: Headless, sandbox-free (root in CI), no network of its own: every test's Chromium runs so.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(
        self,
        profile: Path,
        size: tuple[int, int] = (1280, 1000),
        stderr=None,
        flags: tuple[str, ...] = (),
    ):
        """``flags``: more Chromium switches, e.g. ``--use-fake-device-for-media-stream``
        and ``--use-fake-ui-for-media-stream`` for a page that asks for the webcam."""
        if stderr is None:
            stderr = subprocess.DEVNULL
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self.proc = subprocess.Popen(
            [
                exe,
                *HEADLESS_FLAGS,
                *flags,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                "about:blank",
            ],
            # fds 3 and 4 are set up in the child; close_fds would close them after
            # preexec_fn (Python's own fds are close-on-exec anyway)
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=lambda: _move_fds(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        #: every protocol event seen so far (method and params), oldest first
        self.events: list[dict[str, Any]] = []
        targets = self.send("Target.getTargets", browser=True)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send(
            "Target.attachToTarget", browser=True, targetId=page["targetId"], flatten=True
        )["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read_message(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError("no reply from chromium")
            if not select.select([self._from_browser], [], [], min(left, 1.0))[0]:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, browser: bool = False, timeout: float = 30, **params) -> dict:
        """One command; its result (events in between are kept in :attr:`events`)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if "method" in reply and "id" not in reply:
                self.events.append({"method": reply["method"], "params": reply.get("params", {})})
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, every: float = 0.25) -> Any:
        """Polls ``expression`` until it is truthy; returns its value. An expression that
        throws (e.g. the page's element is not there yet) counts as not yet."""
        deadline = time.monotonic() + timeout
        error = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:
                value, error = None, exc
            if value:
                return value
            time.sleep(every)
        last = f" (last error: {error})" if error else ""
        raise TimeoutError(f"waited {timeout} s for {expression}{last}")

    def image_size(self, selector: str, timeout: float = 30) -> list[int]:
        """``[width, height]`` of the picture the ``<img>`` at ``selector`` shows, once loaded."""
        return self.wait_for(
            f"(() => {{ const i = document.querySelector({json.dumps(selector)});"
            "return i && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null })()",
            timeout,
        )

    def page_errors(self) -> list[str]:
        """The page's uncaught JavaScript exceptions and ``console.error`` messages so far."""
        self.send("Runtime.evaluate", expression="0")  # collects the events sent until now
        out = []
        for event in self.events:
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text")
                out.append(f"exception: {text}")
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                args = params.get("args", [])
                out.append(
                    "console.error: "
                    + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                )
        return out

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far (documents, scripts, images, fetches...)."""
        self.send("Runtime.evaluate", expression="0")
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def set_file(self, selector: str, path: Path) -> None:
        """Puts ``path`` into the file input ``selector`` (as choosing it in the dialog does).

        Chromium reads a relative path from its own working folder and gives the page an
        empty file when it finds none there, so the path is made absolute and checked here."""
        path = Path(path).resolve()
        if not path.is_file():
            raise FileNotFoundError(path)
        root = self.send("DOM.getDocument", depth=-1, pierce=True)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise RuntimeError(f"no {selector} on the page")
        self.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", browser=True, timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
