"""Agent state snapshots, dispatch de-duplication, the callback outbox and the sampler's keep set.

Why SQLite by default: several module processes and the controller share the state, it must
survive the restart of any of them, and it needs no server. With ``redis_url`` configured the same
:class:`StateBackend` interface is served by Redis instead (``state_redis.py``), as the seed's
platform does. Keys follow the seed (ch. 5): ``agent_state_snapshot:<task_id>:<step>``; each
snapshot holds the *cumulative* task state after that step, so restoring step N is enough to
resume at step N + 1.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from testbed.client import TestbedError

if TYPE_CHECKING:
    from testbed.config import StaticConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
  key TEXT PRIMARY KEY, task_id TEXT NOT NULL, step INTEGER NOT NULL, data TEXT NOT NULL,
  ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_task ON snapshots(task_id, step);
CREATE TABLE IF NOT EXISTS dispatches (
  task_id TEXT NOT NULL, seq_no INTEGER NOT NULL, origin TEXT NOT NULL, ts REAL NOT NULL,
  PRIMARY KEY (task_id, seq_no));
CREATE TABLE IF NOT EXISTS kept_traces (trace_id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  task_id TEXT PRIMARY KEY, payload TEXT NOT NULL, ts REAL NOT NULL);
"""


def snapshot_key(task_id: str, step: int) -> str:
    return f"agent_state_snapshot:{task_id}:{step}"


class StateBackend(Protocol):
    """What the controller, the modules and the sampler need from the shared state.

    Every method is atomic against other handles (other processes) on the same state.
    """

    def write_snapshot(self, task_id: str, step: int, state: dict[str, Any]) -> str: ...

    def read_snapshot(self, task_id: str, step: int) -> dict[str, Any] | None: ...

    def snapshots(self, task_id: str) -> list[tuple[int, dict[str, Any]]]: ...

    def truncate_after(self, task_id: str, step: int) -> int: ...

    def claim_dispatch(self, task_id: str, seq_no: int, origin: str) -> int | None: ...

    def park_callback(self, task_id: str, payload: dict[str, Any]) -> None: ...

    def take_callback(self, task_id: str) -> dict[str, Any] | None: ...

    def outbox(self) -> list[str]: ...

    def mark(self, trace_ids: Sequence[str]) -> None: ...

    def which(self, trace_ids: Sequence[str]) -> set[str]: ...

    def close(self) -> None: ...


def redact(url: str) -> str:
    """``url`` with its password hidden, fit for logs, error messages and ``testbed.json``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rsplit('@', 1)[1]}"))


def state_location(static: StaticConfig) -> str:
    """Where the platform's state lives: the Redis URL (password hidden) or the SQLite file."""
    return redact(static.redis_url) if static.redis_url else str(static.state_db)


def open_store(static: StaticConfig) -> StateBackend:
    """The state backend ``static`` selects: Redis at ``redis_url`` if set, else SQLite."""
    if static.redis_url:
        from testbed.state_redis import RedisStateStore  # the client is loaded only when used

        return RedisStateStore(static.redis_url)
    return StateStore(static.state_db)


class StateStore:
    """A thread-safe handle on the testbed's SQLite state database (one per process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=10, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        self._pruned = 0.0
        try:
            with self._lock:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # corrupt, locked past the timeout, not SQLite
            self._conn.close()
            raise TestbedError(f"state store unusable: {exc}", url=str(path)) from exc

    def write_snapshot(self, task_id: str, step: int, state: dict[str, Any]) -> str:
        key = snapshot_key(task_id, step)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)",
                (key, task_id, step, json.dumps(state), time.time()),
            )
        return key

    def read_snapshot(self, task_id: str, step: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM snapshots WHERE key = ?", (snapshot_key(task_id, step),)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def snapshots(self, task_id: str) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT step, data FROM snapshots WHERE task_id = ? ORDER BY step", (task_id,)
            ).fetchall()
        return [(int(step), json.loads(data)) for step, data in rows]

    def truncate_after(self, task_id: str, step: int) -> int:
        """Delete the snapshots after ``step`` (a restore makes ``step`` the latest again)."""
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM snapshots WHERE task_id = ? AND step > ?", (task_id, step)
            )
        return cur.rowcount

    def claim_dispatch(self, task_id: str, seq_no: int, origin: str) -> int | None:
        """Record dispatch ``(task_id, seq_no)``; ``None`` if it was seen before (idempotency),
        else how many dispatches the task has had, this one included.

        The claim and the count are one write transaction (``BEGIN IMMEDIATE`` takes the write
        lock first): in autocommit mode another handle could insert between this INSERT and its
        count, and two handles would report the same count.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                claimed = self._conn.execute(
                    "INSERT OR IGNORE INTO dispatches VALUES (?, ?, ?, ?)",
                    (task_id, seq_no, origin, time.time()),
                ).rowcount
                (count,) = self._conn.execute(
                    "SELECT count(*) FROM dispatches WHERE task_id = ?", (task_id,)
                ).fetchone()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return int(count) if claimed else None

    def park_callback(self, task_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?)",
                (task_id, json.dumps(payload), time.time()),
            )

    def take_callback(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "DELETE FROM outbox WHERE task_id = ? RETURNING payload", (task_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def outbox(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT task_id FROM outbox ORDER BY ts").fetchall()
        return [r[0] for r in rows]

    # --- the sampler's keep set (see sampling.KeepSet) ----------------------------------------

    KEEP_TTL_S = 300.0

    def mark(self, trace_ids: Sequence[str]) -> None:
        """Record that some process keeps these traces (old marks are pruned)."""
        now = time.time()
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO kept_traces VALUES (?, ?)", [(t, now) for t in trace_ids]
            )
            if now - self._pruned > 10:
                self._conn.execute("DELETE FROM kept_traces WHERE ts < ?", (now - self.KEEP_TTL_S,))
                self._pruned = now

    def which(self, trace_ids: Sequence[str]) -> set[str]:
        """The subset of ``trace_ids`` that some process keeps."""
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(trace_ids), 500):
                chunk = list(trace_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT trace_id FROM kept_traces WHERE trace_id IN ({marks})", chunk
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

    def close(self) -> None:
        with self._lock:
            self._conn.close()
