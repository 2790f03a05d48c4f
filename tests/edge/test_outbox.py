"""The MQTT outbox (SQLite in the state folder): order, bounds, restart, locking, bad files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from deepfer.edge.outputs.mqtt.outbox import New, Outbox, OutboxError, outbox_path, state_dir


def msg(seq: int | None, created: float = 1000.0, kind: str = "event") -> New:
    return New("deepfer/d/events", f'{{"seq":{seq}}}'.encode(), 1, kind, seq, created)


def test_order_ack_and_restart_keep_what_is_left_in_order(tmp_path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as box:
        assert box.count == 0 and box.next_seq == 1
        box.commit([msg(i) for i in range(1, 11)])
        rows = box.read(0, 100)
        assert [r.seq for r in rows] == list(range(1, 11))
        box.commit(acked=[r.id for r in rows[:4]])
        assert box.count == 6 and box.next_seq == 11
        assert [r.seq for r in box.read(rows[5].id, 2)] == [7, 8]  # paging after an id
    with Outbox(path) as box:  # a restart: what is left, in order; seq goes on
        assert box.count == 6 and box.next_seq == 11
        assert [r.seq for r in box.read(0, 100)] == [5, 6, 7, 8, 9, 10]
        box.commit([msg(11), msg(None, kind="summary")])
        assert [(r.kind, r.seq) for r in box.read(0, 100)][-2:] == [
            ("event", 11),
            ("summary", None),
        ]
        assert box.next_seq == 12  # a summary carries no seq
        assert box.read(0, 1)[0].payload == b'{"seq":5}'


def test_size_bound_drops_the_oldest_and_counts(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=5) as box:
        dropped = box.commit([msg(i) for i in range(1, 4)])
        assert dropped == [] and box.count == 3
        dropped = box.commit([msg(i) for i in range(4, 21)])
        assert [(d.count, d.reason, d.first_seq) for d in dropped] == [(15, "outbox full", 1)]
        assert box.count == 5 and [r.seq for r in box.read()] == [16, 17, 18, 19, 20]
        assert box.next_seq == 21


class Clock:
    """A stand-in for the system's boot clock: ``(boot, seconds since it)``."""

    def __init__(self, boot: int | None = 1, seconds: float = 100.0):
        self.boot, self.seconds = boot, seconds

    def __call__(self) -> tuple[int | None, float]:
        return self.boot, self.seconds


def test_age_bound_drops_what_is_too_old(tmp_path):
    clock = Clock()
    with Outbox(tmp_path / "o.sqlite3", max_age_s=60, clock=clock) as box:
        box.commit([msg(1)])
        clock.seconds += 50
        box.commit([msg(2), msg(3)])
        clock.seconds += 20
        assert [d.first_seq for d in box.commit()] == [1]  # 70 s old; seq 2 and 3: 20 s
        assert box.count == 2
        clock.seconds += 41
        dropped = box.commit()  # nothing new: only the bound
        assert [(d.count, d.reason, d.first_seq) for d in dropped] == [(2, "too old", 2)]
        assert box.count == 0 and box.next_seq == 4


def test_age_is_not_the_wall_clock(tmp_path):
    """A Pi boots in 1970 (or at its last shutdown) and NTP later sets the clock: messages
    made before that carry a wall time decades (or days) back, and must not all be dropped as
    too old; nor kept for ever when the clock goes back."""
    clock = Clock()
    with Outbox(tmp_path / "o.sqlite3", max_age_s=3600, clock=clock) as box:
        box.commit([msg(1, created=10.0), msg(2, created=4e9)])  # 1970 and 2096
        clock.seconds += 3599
        assert box.commit([msg(3, created=1.8e9)]) == [] and box.count == 3
        clock.seconds += 2  # an hour on the outbox's clock, whatever the wall clock says
        assert [(d.count, d.first_seq) for d in box.commit()] == [(2, 1)]


def test_age_across_restarts_counts_downtime_within_a_boot_only(tmp_path):
    path, clock = tmp_path / "o.sqlite3", Clock(boot=7, seconds=100.0)
    with Outbox(path, max_age_s=100, clock=clock) as box:
        box.commit([msg(1), msg(2)])
    clock.seconds += 60  # the daemon restarted by systemd: same boot, the 60 s count
    with Outbox(path, max_age_s=100, clock=clock) as box:
        assert box.clock_ms == 60_000
        box.commit([msg(3)])
    clock.boot, clock.seconds = 8, 5.0  # a reboot: the time it was off is not known
    with Outbox(path, max_age_s=100, clock=clock) as box:
        assert box.clock_ms == 60_000 and box.count == 3
        clock.seconds += 45  # 105 s for seq 1 and 2, 45 s for seq 3
        assert [(d.count, d.first_seq) for d in box.commit()] == [(2, 1)]
    clock.boot = None  # no boot id (not Linux): restarts count from where the outbox stood
    with Outbox(path, max_age_s=100, clock=clock) as box:
        assert box.clock_ms == 105_000 and box.count == 1


def test_an_outbox_of_an_earlier_version_is_taken_on(tmp_path):
    """Files without the ``stored_ms`` column: their rows start ageing when first opened."""
    path = tmp_path / "o.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,"
        " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, kind TEXT NOT NULL,"
        " seq INTEGER); CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO outbox (created, topic, payload, qos, kind, seq)"
        " VALUES (0, 'deepfer/d/events', X'7B7D', 1, 'event', 5);"
        "INSERT INTO meta VALUES ('next_seq', 6);"
    )
    db.close()
    clock = Clock()
    with Outbox(path, max_age_s=10, clock=clock) as box:
        assert box.count == 1 and box.next_seq == 6
        assert box.commit([msg(6)]) == [] and [r.seq for r in box.read()] == [5, 6]
        clock.seconds += 11
        assert [(d.count, d.first_seq) for d in box.commit()] == [(2, 5)]


def test_wal_and_full_sync(tmp_path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as box:
        box.commit([msg(1)])
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1  # committed: visible
        db.close()


def test_a_second_process_on_the_same_outbox_is_refused(tmp_path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path):
        with pytest.raises(OutboxError, match="another deepfer process") as err:
            Outbox(path).open()
        assert str(path) in str(err.value)
    Outbox(path).open().close()  # free again


def test_a_broken_file_or_folder_is_a_clear_error(tmp_path):
    bad = tmp_path / "o.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="not a usable outbox") as err:
        Outbox(bad).open()
    assert str(bad) in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="state folder") as err:
        Outbox(blocker / "sub" / "o.sqlite3").open()
    assert "run.state_dir" in str(err.value)


def test_state_dir_resolution(tmp_path):
    home = Path.home()
    assert state_dir("/x/y", {}) == Path("/x/y")
    assert state_dir("", {"STATE_DIRECTORY": "/var/lib/deepfer"}) == Path("/var/lib/deepfer")
    assert state_dir("", {"XDG_STATE_HOME": "/s"}) == Path("/s/deepfer")
    assert state_dir("", {}) == home / ".local/state/deepfer"
    assert outbox_path(tmp_path, "cam/1 x").name == "mqtt-outbox-cam_1_x.sqlite3"


def test_reads_from_another_thread_than_the_opener(tmp_path):
    """The sink opens the outbox on the caller's thread and hands it to its sender thread."""
    box = Outbox(tmp_path / "o.sqlite3").open()
    out = []
    t = threading.Thread(target=lambda: (box.commit([msg(1)]), out.extend(box.read())))
    t.start()
    t.join()
    box.close()
    assert [r.seq for r in out] == [1]
