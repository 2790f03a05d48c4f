"""The soak benchmark, 3 minutes (benchmarks/soak.py): broker stopped and started every minute,
the daemon stopped once with SIGTERM and once with SIGKILL: every event arrives, none lost,
first arrivals in seq order. Marked ``soak`` (deselect with ``-m "not soak"``); CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mosquitto import requires_mosquitto

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.soak, requires_mosquitto]


def test_soak_three_minutes_loses_nothing(tmp_path, media_dir):
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", "3",
         "--video", str(media_dir / "woman2.mp4"), "--json", str(out)],
        capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert out.is_file(), proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["produced"] > 100, result
    assert result["lost"] == 0, result["lost_seqs"]
    assert result["received_unique"] == result["produced"]
    assert result["first_arrivals_in_seq_order"] is True
    assert result["left_in_outbox"] == 0
    assert result["broker_restarts"] == 2 and result["run_ids_seen"] == 3
    assert [a.get("exit") for a in result["actions"] if "daemon" in a] == [0, -9, 0]
    assert proc.returncode == 0, proc.stdout[-2000:]
