"""Append-only, hash-chained, write-ahead audit log of every repair step (JSONL + SQLite).

Why each property:

* write-ahead: a step is logged *before* it runs (``action_intent``) and again when it finished
  (``action_result``). A process killed between the two leaves an intent without a result, so a
  restarted process knows the action may have run and never performs it a second time.
* append-only JSONL with fsync: the durable record, readable with ``jq``; the SQLite copy is an
  index for queries (``tamo audit list``), rebuilt from the JSONL when it lags after a crash.
* hash chain: each entry stores the SHA-256 of the previous entry's hash and its own canonical
  JSON, so editing or deleting any past entry breaks :meth:`AuditLog.verify`.
* the seed's audit fields (chapter 9): trace_id, task_id, detected_at, root_cause, strategy_id,
  executed_by, status, duration_ms, fallback_used, rollback_applied.

Several processes may append at once: an exclusive ``flock`` on a lock file serialises appends.

Faults: a write that fails (disk full, file-size limit) is cut back off the JSONL and raised as
one :class:`AuditWriteError` — the chain stays valid, every entry acknowledged before is kept, and
the step it would have announced does not run (the runner logs *before* acting). A lock another
process holds too long, a locked or corrupt SQLite index, a corrupt JSONL line: each is one
:class:`~tools.core.errors.TamoError` naming the file; a corrupt index is set aside and
rebuilt from the JSONL, the durable record.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.core.errors import InputError, NotFoundError, TamoError

GENESIS = "0" * 64
LOCK_TIMEOUT_S = 30.0


class AuditWriteError(TamoError):
    """The audit log could not record an entry (nothing of it was kept)."""


def _index_error(db_path: Path, exc: sqlite3.Error) -> TamoError:
    return TamoError(f"audit index unusable: {exc}", source=str(db_path))


class AuditEntry(BaseModel):
    """One audit record. ``seq`` is its position in the log; ``hash`` chains it to the last."""

    seq: int = 0
    entry_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    ts: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    event: str  # plan, precheck, dry_run, approval, action_intent, action_result, verify, ...
    task_id: str
    seq_no: int | None = None  # the action's number within the repair task
    trace_id: str | None = None
    detected_at: str | None = None
    root_cause: str | None = None
    strategy_id: str | None = None
    executed_by: str = "auto-repair-engine"
    status: str = "info"  # info, started, success, failed, skipped, refused, approved, denied
    duration_ms: float | None = None
    fallback_used: bool = False
    rollback_applied: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def compute_hash(self) -> str:
        body = self.model_dump(exclude={"hash"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256((self.prev_hash + text).encode()).hexdigest()


class ChainReport(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None


_COLUMNS = (
    "seq",
    "entry_id",
    "ts",
    "event",
    "task_id",
    "seq_no",
    "trace_id",
    "strategy_id",
    "status",
    "executed_by",
    "hash",
)


class AuditLog:
    """The audit log in ``directory`` (``audit.jsonl``, ``audit.sqlite``, ``audit.lock``)."""

    def __init__(self, directory: Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "audit.jsonl"
        self.db_path = self.dir / "audit.sqlite"
        self._lock_path = self.dir / "audit.lock"
        self.lock_timeout_s = lock_timeout_s
        self._seen = (0, 0)  # (byte offset, line) of the JSONL read into the index so far
        with self._locked():
            try:
                self._db = self._open_index()
            except sqlite3.DatabaseError:
                # the index is derived data: set a corrupt one aside and rebuild it from the JSONL
                self.db_path.rename(self.dir / f"audit.sqlite.corrupt-{uuid.uuid4().hex[:8]}")
                self._db = self._open_index()
            try:
                self._catch_up()
            except sqlite3.Error as exc:
                raise _index_error(self.db_path, exc) from exc

    def _open_index(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=self.lock_timeout_s, check_same_thread=False)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, entry_id TEXT UNIQUE, "
                "ts TEXT, event TEXT, task_id TEXT, seq_no INTEGER, trace_id TEXT, "
                "strategy_id TEXT, status TEXT, executed_by TEXT, hash TEXT, json TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS audit_task ON audit(task_id, seq_no)")
            db.commit()
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise _index_error(self.db_path, exc) from exc
            raise sqlite3.DatabaseError(str(exc)) from exc
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The exclusive append lock; another process holding it too long is an error, not a
        hang (a stuck process must not stall every repair)."""
        with open(self._lock_path, "a") as fh:
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TamoError(
                            f"audit log locked by another process for {self.lock_timeout_s:g} s",
                            source=str(self._lock_path),
                        ) from None
                    time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_jsonl(
        self, start: tuple[int, int] = (0, 0)
    ) -> Iterator[tuple[AuditEntry, tuple[int, int]]]:
        """Complete entries from byte offset ``start[0]`` (after line ``start[1]``), each with
        the (offset, line) just past it; a torn last line (a crash mid-write) ends the read."""
        if not self.jsonl.exists():
            return
        offset, n = start
        with open(self.jsonl, "rb") as fh:
            fh.seek(offset)
            for raw in fh:
                n += 1
                if not raw.endswith(b"\n"):
                    return
                offset += len(raw)
                try:
                    entry = AuditEntry.model_validate_json(raw)
                except ValueError as exc:
                    raise InputError(
                        f"corrupt audit entry: {exc}", path=str(self.jsonl), line=n
                    ) from exc
                yield entry, (offset, n)

    def _last(self) -> tuple[int, str]:
        row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def _index(self, e: AuditEntry) -> None:
        self._db.execute(
            f"INSERT OR IGNORE INTO audit ({', '.join(_COLUMNS)}, json) VALUES "
            f"({', '.join('?' * (len(_COLUMNS) + 1))})",
            (*(getattr(e, c) for c in _COLUMNS), e.model_dump_json()),
        )

    def _catch_up(self) -> None:
        """Index JSONL entries missing from SQLite (written by another process, or a crash
        between the two writes), reading only what was appended since this handle last looked."""
        last_seq, _ = self._last()
        start = self._seen
        if not self.jsonl.exists() or self.jsonl.stat().st_size < start[0]:
            start = (0, 0)  # the file was replaced or cut: read it all again
        added = False
        for e, end in self._read_jsonl(start):
            if e.seq > last_seq:
                self._index(e)
                added = True
            self._seen = end
        if added:
            self._db.commit()

    def _drop_torn_tail(self) -> None:
        """Cut a last line without its newline: a write that a crash interrupted never counted."""
        if not self.jsonl.exists() or self.jsonl.stat().st_size == 0:
            return
        with open(self.jsonl, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            data = fh.seek(0) or fh.read()
            fh.truncate(data.rfind(b"\n") + 1)

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Chain, fsync to the JSONL, then index; returns the stored entry."""
        with self._locked():
            self._drop_torn_tail()
            try:
                self._catch_up()
                seq, prev = self._last()
            except sqlite3.Error as exc:
                raise _index_error(self.db_path, exc) from exc
            stored = entry.model_copy(update={"seq": seq + 1, "prev_hash": prev})
            stored = stored.model_copy(update={"hash": stored.compute_hash()})
            self._write_line((stored.model_dump_json() + "\n").encode())
            try:
                self._index(stored)
                self._db.commit()
            except sqlite3.Error:
                # the JSONL holds the entry (acknowledged); the index catches up on next use
                self._db.rollback()
        return stored

    def _write_line(self, data: bytes) -> None:
        """Append and fsync one line, or leave the file as it was and raise AuditWriteError."""
        fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, size)  # no torn line; earlier entries untouched
                raise AuditWriteError(
                    f"cannot record audit entry ({exc.strerror or exc}); nothing was recorded",
                    source=str(self.jsonl),
                ) from exc
        finally:
            os.close(fd)

    def record(self, event: str, task_id: str, **fields: Any) -> AuditEntry:
        return self.append(AuditEntry(event=event, task_id=task_id, **fields))

    # -- queries -------------------------------------------------------------------------------
    def entries(
        self,
        *,
        task_id: str | None = None,
        strategy_id: str | None = None,
        trace_id: str | None = None,
        event: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        with self._locked():
            self._catch_up()
        where, args = [], []
        for col, val in (
            ("task_id", task_id),
            ("strategy_id", strategy_id),
            ("trace_id", trace_id),
            ("event", event),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT json FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY seq"
        rows = self._db.execute(sql, args).fetchall()
        out = [AuditEntry.model_validate_json(r[0]) for r in rows]
        return out[-limit:] if limit else out

    def get(self, ref: str) -> AuditEntry:
        """An entry by ``entry_id`` or by ``seq`` number."""
        col, val = ("seq", int(ref)) if ref.isdigit() else ("entry_id", ref)
        row = self._db.execute(f"SELECT json FROM audit WHERE {col} = ?", (val,)).fetchone()
        if row is None:
            raise NotFoundError(f"no audit entry {ref!r}", source=str(self.db_path))
        return AuditEntry.model_validate_json(row[0])

    def verify(self) -> ChainReport:
        """Recompute the chain over the JSONL and compare with the SQLite index."""
        prev, n = GENESIS, 0
        indexed = {r[0]: r[1] for r in self._db.execute("SELECT seq, hash FROM audit")}
        for e, _ in self._read_jsonl():
            n += 1
            if e.seq != n:
                return ChainReport(
                    ok=False,
                    entries=n,
                    first_bad_seq=n,
                    problem=f"entry {n} has seq {e.seq} (deleted or reordered)",
                )
            if e.prev_hash != prev:
                return ChainReport(
                    ok=False,
                    entries=n,
                    first_bad_seq=n,
                    problem="prev_hash does not match the previous entry",
                )
            if e.compute_hash() != e.hash:
                return ChainReport(
                    ok=False,
                    entries=n,
                    first_bad_seq=n,
                    problem="content does not match its hash (edited)",
                )
            if indexed.get(e.seq) not in (None, e.hash):
                return ChainReport(
                    ok=False,
                    entries=n,
                    first_bad_seq=n,
                    problem="SQLite index differs from the JSONL",
                )
            prev = e.hash
        if len(indexed) > n:
            return ChainReport(
                ok=False,
                entries=n,
                first_bad_seq=n + 1,
                problem="SQLite has entries the JSONL lost (truncated)",
            )
        return ChainReport(ok=True, entries=n)

    def export(self, **filters: Any) -> dict[str, Any]:
        """An audit package (chapter 9: exportable JSON) with the chain's verification."""
        return {
            "exported_at": datetime.now(UTC).isoformat(),
            "chain": self.verify().model_dump(),
            "entries": [e.model_dump() for e in self.entries(**filters)],
        }
