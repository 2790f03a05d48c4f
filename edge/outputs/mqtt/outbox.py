"""The store-and-forward outbox: events and summaries on disk until the broker acknowledged them.

One SQLite file (the standard library's ``sqlite3``) per device in the state folder
(:func:`state_dir`): ``mqtt-outbox-<device_id>.sqlite3``. Rows are kept in the order they were
made (``id``); a row leaves only when the broker acknowledged it (PUBACK for QoS 1). The file
also keeps ``next_seq``, so event ``seq`` numbers keep growing across restarts.

Durability (docs/mqtt.md): writes are batched, one transaction per
``mqtt.commit_interval_s`` (and at shutdown), with WAL and ``synchronous=FULL``: a committed
message survives a crash, SIGKILL and a power cut. Messages are published only after they are
committed, so a ``seq`` that left the device is never used again; what was made in the last
interval before a SIGKILL or a power cut (never published) is lost, and its ``seq`` numbers
are given again. Acknowledged rows are deleted in the next batch: a crash in between sends
them once more (at-least-once; consumers drop repeated ``(device_id, seq)``).

Bounded: at most ``max_messages`` rows and none older than ``max_age_s``; the oldest go first,
counted. Not thread-safe by design: one thread (the MQTT sink's sender) owns an open outbox.

Ages are counted on the outbox's own clock, never the wall clock: a Raspberry Pi has no
real-time clock, boots at the time of its last shutdown (fake-hwclock) or in 1970, and NTP
later jumps its wall clock by hours, days or decades, forward or (rarely) back. The clock
(``meta.clock_ms``) advances by the system's boot time (``CLOCK_BOOTTIME``, monotonic, counts
suspend) while the daemon runs and, within one boot (``/proc/sys/kernel/random/boot_id``),
across its restarts; time the device spent switched off is not counted (nothing on it can
measure that honestly). Each row keeps the clock at which it was stored (``stored_ms``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deepfer.edge.errors import DeepFERError
from deepfer.edge.paths import user_path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER,
    stored_ms INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

#: Less free space than this (bytes, to the daemon's user) where the outbox cannot be opened is
#: a full disk: SQLite says so for a new file ("database or disk is full") but not for one left
#: by the last run ("disk I/O error": its shared-memory file cannot grow).
FULL_DISK_BYTES = 1 << 20


def boot_clock() -> tuple[int | None, float]:
    """``(boot, seconds)``: this boot's id (an int; None where the system has none) and the
    seconds since it (``CLOCK_BOOTTIME``; ``time.monotonic()`` where there is none). Neither
    moves when the wall clock is set."""
    try:
        boot: int | None = int(_BOOT_ID.read_text().strip().replace("-", "")[:15], 16)
    except (OSError, ValueError):
        boot = None
    clock_id = getattr(time, "CLOCK_BOOTTIME", None)
    seconds = time.clock_gettime(clock_id) if clock_id is not None else time.monotonic()
    return boot, seconds


class OutboxError(DeepFERError):
    """The outbox file cannot be opened or written (names the file)."""


class OutboxDiskFull(OutboxError):
    """The outbox cannot be opened at start for want of disk space. That passes (logs rotate,
    someone frees space): exit 75 (EX_TEMPFAIL), tried again by the service like a camera not
    yet there, where exit 2 (a wrong setting) is not. Running on without the outbox would give
    ``seq`` numbers again from 1: the one in the file is not known."""

    exit_code = 75


def free_bytes(folder: Path) -> int | None:
    """Bytes free to this user on the disk of ``folder`` (or of its nearest existing parent);
    None if there is none to ask."""
    for place in (folder, *folder.parents):
        try:
            st = os.statvfs(place)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def state_dir(configured: str = "", environ: Mapping[str, str] | None = None) -> Path:
    """Where the daemon keeps its state: ``configured`` (``run.state_dir`` / ``--state-dir``),
    else ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=deepfer`` -> /var/lib/deepfer), else
    ``$XDG_STATE_HOME/deepfer``, else ``~/.local/state/deepfer``."""
    env = os.environ if environ is None else environ
    if configured:
        return user_path(configured)
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "deepfer"
    return Path.home() / ".local" / "state" / "deepfer"


def outbox_path(folder: Path, device_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", device_id)
    return Path(folder) / f"mqtt-outbox-{safe}.sqlite3"


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    qos: int
    kind: str
    seq: int | None


@dataclass(frozen=True)
class New:
    """A message to store: ``created`` is the wall-clock time it was made (kept as said, not
    used for the age bound: see the module's docstring)."""

    topic: str
    payload: bytes
    qos: int
    kind: str
    seq: int | None
    created: float


@dataclass(frozen=True)
class Dropped:
    """Rows removed by the bounds in one commit: how many, why, the oldest one's kind/seq."""

    count: int
    reason: str
    first_kind: str
    first_seq: int | None


class Outbox:
    """``Outbox(path, max_messages, max_age_s).open()``; then ``commit()``, ``read()``,
    ``close()`` from one thread. ``clock``: :func:`boot_clock` (tests give their own)."""

    def __init__(
        self,
        path: Path,
        max_messages: int = 10000,
        max_age_s: float = 0.0,
        clock: Callable[[], tuple[int | None, float]] = boot_clock,
    ):
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_age_s = float(max_age_s)
        self._db: sqlite3.Connection | None = None
        self._lock_file = None
        self.count = 0
        self.next_seq = 1
        self._clock = clock
        #: The outbox's clock, ms: see the module's docstring; ``_mark``: (boot, seconds) of
        #: the system's clock when it was last advanced.
        self.clock_ms = 0
        self._mark: tuple[int | None, float] = (None, 0.0)

    def _tick(self) -> int:
        """Advances the outbox's clock by the system's boot time since the last mark (only
        within the same boot) and returns it, in ms."""
        boot, seconds = self._clock()
        last_boot, last = self._mark
        if boot is not None and boot == last_boot and seconds >= last:
            self.clock_ms += int(round((seconds - last) * 1000))
        self._mark = (boot, seconds)
        return self.clock_ms

    def _fail(self, what: str, exc: BaseException) -> OutboxError:
        return OutboxError(f"MQTT outbox {self.path}: {what} ({exc})")

    def _open_failed(self, what: str, exc: BaseException) -> OutboxError:
        """Why :meth:`open` failed: a full disk (:class:`OutboxDiskFull`), else ``what``. A
        read-only file system or a permission refused is never a full disk, whatever the space
        left (a read-only one may say 0 bytes free: squashfs, a filled ext4 remounted read-only
        after an SD card error): it is a wrong setting, and trying again does not mend it."""
        folder = self.path.parent
        free = free_bytes(folder)
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        full = code == 13 or (  # SQLITE_FULL
            isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        )
        refused = code in (3, 8) or (  # SQLITE_PERM, SQLITE_READONLY
            isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        )
        if refused or (not full and (free is None or free >= FULL_DISK_BYTES)):
            return self._fail(what, exc)
        left = "no" if free is None else f"{free:,} bytes"
        return OutboxDiskFull(
            f"MQTT outbox {self.path}: the disk is full ({left} free on the disk of {folder}: "
            f"{exc}); free some space there or set run.state_dir to another disk (exit 75: the "
            "service tries again)"
        )

    def open(self) -> Outbox:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._open_failed(
                "cannot create the state folder (set run.state_dir)", exc
            ) from exc
        lock_path = self.path.with_suffix(".lock")
        try:
            self._lock_file = open(lock_path, "a+")  # noqa: SIM115 (held while open)
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._release_lock()
            raise self._fail(
                "another deepfer process uses it (same device_id and state folder)", exc
            ) from exc
        except OSError as exc:
            self._release_lock()
            raise self._open_failed(
                "cannot write in the state folder (set run.state_dir)", exc
            ) from exc
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db = db
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            columns = [r[1] for r in db.execute("PRAGMA table_info(outbox)")]
            if "stored_ms" not in columns:  # an outbox of an earlier version
                db.execute("ALTER TABLE outbox ADD COLUMN stored_ms INTEGER")
            self.count = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            meta = dict(db.execute("SELECT key, value FROM meta"))
            self.next_seq = int(meta.get("next_seq", 1))
            self.clock_ms = int(meta.get("clock_ms", 0))
            boot = meta.get("boot")
            self._mark = (
                int(boot) if boot is not None and boot >= 0 else None,
                meta.get("boot_ms", 0) / 1000,
            )
            now = self._tick()  # a restart within the same boot: the time it was down counts
            # rows from before ages were kept (or from an older version) start ageing now
            db.execute("UPDATE outbox SET stored_ms=? WHERE stored_ms IS NULL", (now,))
        except sqlite3.Error as exc:
            self.close()
            raise self._open_failed(
                "not a usable outbox (move it away to start afresh)", exc
            ) from exc
        return self

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def commit(self, new: Iterable[New] = (), acked: Iterable[int] = ()) -> list[Dropped]:
        """One transaction: store ``new``, delete the ``acked`` row ids, apply the bounds.
        Returns what the bounds dropped. Raises :class:`OutboxError` (nothing changed)."""
        db = self._db
        if db is None:
            raise OutboxError(f"MQTT outbox {self.path} is closed")
        before = (self.clock_ms, self._mark)
        now = self._tick()
        new = list(new)
        acked = list(acked)
        dropped: list[Dropped] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            if new:
                db.executemany(
                    "INSERT INTO outbox (created, topic, payload, qos, kind, seq, stored_ms)"
                    " VALUES (?,?,?,?,?,?,?)",
                    [(m.created, m.topic, m.payload, m.qos, m.kind, m.seq, now) for m in new],
                )
                seqs = [m.seq for m in new if m.seq is not None]
                if seqs and max(seqs) + 1 > self.next_seq:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?)",
                        (max(seqs) + 1,),
                    )
            if acked:
                db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in acked])
            boot = self._mark[0]
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("clock_ms", now),
                    ("boot", -1 if boot is None else boot),
                    ("boot_ms", int(round(self._mark[1] * 1000))),
                ],
            )
            if self.max_age_s > 0:
                oldest = now - int(round(self.max_age_s * 1000))
                dropped += self._drop(db, "stored_ms < ?", (oldest,), "too old")
            count = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            if count > self.max_messages:
                limit = count - self.max_messages
                cut = db.execute(
                    "SELECT id FROM outbox ORDER BY id LIMIT 1 OFFSET ?", (limit - 1,)
                ).fetchone()[0]
                dropped += self._drop(db, "id <= ?", (cut,), "outbox full")
                count -= limit
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self.clock_ms, self._mark = before  # not kept: as if this commit never happened
            raise self._fail("cannot write", exc) from exc
        self.count = count
        if new:
            seqs = [m.seq for m in new if m.seq is not None]
            if seqs:
                self.next_seq = max(self.next_seq, max(seqs) + 1)
        return [d for d in dropped if d.count]

    @staticmethod
    def _drop(db: sqlite3.Connection, where: str, args: tuple, reason: str) -> list[Dropped]:
        first = db.execute(
            f"SELECT kind, seq FROM outbox WHERE {where} ORDER BY id LIMIT 1", args
        ).fetchone()
        if first is None:
            return []
        n = db.execute(f"DELETE FROM outbox WHERE {where}", args).rowcount
        return [Dropped(n, reason, first[0], first[1])]

    def read(self, after_id: int = 0, limit: int = 100) -> list[Row]:
        """Stored rows with ``id > after_id``, oldest first."""
        if self._db is None:
            return []
        try:
            cur = self._db.execute(
                "SELECT id, topic, payload, qos, kind, seq FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            return [Row(r[0], r[1], bytes(r[2]), r[3], r[4], r[5]) for r in cur]
        except sqlite3.Error as exc:
            raise self._fail("cannot read", exc) from exc

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._release_lock()

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
