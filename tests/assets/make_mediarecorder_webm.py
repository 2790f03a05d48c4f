"""Makes ``mediarecorder_vfr.webm``: a clip recorded by Chromium's MediaRecorder, as a web page
(or the demo's webcam) records one, at a variable frame rate: 50 frames about 60 a second,
then 30 frames 10 a second. Frame ``i`` is a bright bar at x = 2 i + 8 (4 px wide) on a dark
320x48 picture. Such a WebM names no frame rate: OpenCV reports 1000 fps and a frame count
that is its duration in milliseconds. Run from the repository root with Chromium installed:
``python tests/assets/make_mediarecorder_webm.py``."""

import base64
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (this script only)
from chromium_cdp import Chromium  # noqa: E402

RECORD = """
new Promise((done) => {
  const c = document.createElement('canvas'); c.width = 320; c.height = 48;
  document.body.appendChild(c);
  const g = c.getContext('2d'), stream = c.captureStream(0), track = stream.getVideoTracks()[0];
  const r = new MediaRecorder(stream, {mimeType: 'video/webm;codecs=vp8',
                                       videoBitsPerSecond: 300000});
  const parts = []; r.ondataavailable = (e) => parts.push(e.data);
  r.onstop = async () => {
    const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
    let text = ''; for (const b of bytes) text += String.fromCharCode(b);
    done(btoa(text));
  };
  const draw = (i) => {
    g.fillStyle = 'rgb(30,30,30)'; g.fillRect(0, 0, 320, 48);
    g.fillStyle = 'rgb(230,230,230)'; g.fillRect(2 * i + 8, 0, 4, 48); track.requestFrame();
  };
  r.start(); let i = 0;
  const step = () => {
    draw(i); i++;
    if (i < 80) setTimeout(step, i <= 50 ? 1000 / 60 : 100); else setTimeout(() => r.stop(), 100);
  };
  step();
})
"""

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as profile, Chromium(Path(profile)) as browser:
        reply = browser.send(
            "Runtime.evaluate", expression=RECORD, awaitPromise=True, returnByValue=True, timeout=60
        )
    out = Path(__file__).with_name("mediarecorder_vfr.webm")
    out.write_bytes(base64.b64decode(reply["result"]["value"]))
    print(out, out.stat().st_size, "bytes")
