"""The soak benchmark, 3 minutes (benchmarks/soak.py): broker stopped and started every minute,
the daemon stopped once with SIGTERM and once with SIGKILL: every event arrives, none lost,
first arrivals in seq order. Marked ``soak`` (deselect with ``-m "not soak"``); CI runs it.
In a whole-suite run it is started when collection ends and runs beside the other tests
(``tests/soak_run.py``); this test, run last, waits for its result."""

from __future__ import annotations

import pytest
import soak_run
from mosquitto import requires_mosquitto

pytestmark = [pytest.mark.soak, requires_mosquitto]


def test_soak_three_minutes_loses_nothing(request, tmp_path, media_dir):
    run = soak_run.started(request.config) or soak_run.SoakRun.start(media_dir, tmp_path)
    result, code, log = run.wait(timeout=420)
    assert result is not None, log
    assert result["produced"] > 100, result
    assert result["lost"] == 0, result["lost_seqs"]
    assert result["received_unique"] == result["produced"]
    assert result["first_arrivals_in_seq_order"] is True
    assert result["left_in_outbox"] == 0
    assert result["broker_restarts"] == 2 and result["run_ids_seen"] == 3
    assert [a.get("exit") for a in result["actions"] if "daemon" in a] == [0, -9, 0]
    assert code == 0, log
