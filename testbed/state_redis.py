"""The Redis state backend: the :class:`~testbed.state.StateBackend` interface on a Redis server.

Why Redis: the seed's platform keeps ``agent_state_snapshot:<task>:<step>`` in Redis, so a repair
tool (or an operator with ``redis-cli``) sees exactly the keys the chapter talks about, and the
state outlives the testbed's workdir. Every process opens its own handle; each operation is one
Redis-native atomic step, so concurrent module processes never see half an update:

* snapshot ``agent_state_snapshot:<task>:<step>`` (a JSON string, the exact seed key) plus the
  sorted set ``testbed:snapshot_steps:<task>`` of its steps, written together in MULTI/EXEC;
  truncation WATCHes that index, so a concurrent write makes it retry instead of being lost;
* dispatches: hash ``testbed:dispatches:<task>`` of ``seq_no -> origin``; HSETNX + HLEN in one
  MULTI/EXEC is the de-duplication *and* the dispatch count (the count cannot drift from the
  set of claimed ``seq_no`` as a separate INCR counter could if a process died in between);
* outbox: hash ``testbed:outbox`` of ``task -> payload`` and sorted set ``testbed:outbox_order``
  by park time; a take is HGET + HDEL in MULTI/EXEC, so exactly one taker gets a payload;
* keep set: ``testbed:kept:<trace_id>`` with ``SET ... EX`` so Redis expires old marks itself.

Snapshot keys carry no prefix (the seed names them); isolate two testbeds on one server by
giving each its own database number (``redis://127.0.0.1:6379/3``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.retry import Retry

from testbed.client import TestbedError
from testbed.state import redact, snapshot_key

PREFIX = "testbed:"
OUTBOX = PREFIX + "outbox"
OUTBOX_ORDER = PREFIX + "outbox_order"
KEEP_CHUNK = 500


def _steps_key(task_id: str) -> str:
    return f"{PREFIX}snapshot_steps:{task_id}"


def _dispatch_key(task_id: str) -> str:
    return f"{PREFIX}dispatches:{task_id}"


def _kept_key(trace_id: str) -> str:
    return f"{PREFIX}kept:{trace_id}"


class RedisStateStore:
    """A handle on the testbed's state in Redis (thread-safe: redis-py pools its connections)."""

    KEEP_TTL_S = 300.0

    def __init__(self, url: str) -> None:
        self.url = redact(url)
        try:
            self._redis: redis.Redis = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=2.0,
                socket_timeout=5.0,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            )
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise TestbedError(f"Redis state store unavailable: {exc}", url=self.url) from exc

    # --- snapshots -----------------------------------------------------------------------------

    def write_snapshot(self, task_id: str, step: int, state: dict[str, Any]) -> str:
        key = snapshot_key(task_id, step)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, json.dumps(state))
        pipe.zadd(_steps_key(task_id), {str(step): step})
        pipe.execute()
        return key

    def read_snapshot(self, task_id: str, step: int) -> dict[str, Any] | None:
        data = self._redis.get(snapshot_key(task_id, step))
        return json.loads(data) if data is not None else None

    def snapshots(self, task_id: str) -> list[tuple[int, dict[str, Any]]]:
        steps = [int(s) for s in self._redis.zrange(_steps_key(task_id), 0, -1)]
        if not steps:
            return []
        values = self._redis.mget([snapshot_key(task_id, s) for s in steps])
        return [(s, json.loads(v)) for s, v in zip(steps, values, strict=True) if v is not None]

    def truncate_after(self, task_id: str, step: int) -> int:
        """Delete the snapshots after ``step`` (a restore makes ``step`` the latest again)."""
        index = _steps_key(task_id)

        def drop(pipe: Pipeline) -> int:
            later = pipe.zrangebyscore(index, f"({step}", "+inf")
            pipe.multi()
            if later:
                pipe.delete(*(snapshot_key(task_id, int(s)) for s in later))
                pipe.zrem(index, *later)
            return len(later)

        return int(self._redis.transaction(drop, index, value_from_callable=True))

    # --- dispatches and the callback outbox ----------------------------------------------------

    def claim_dispatch(self, task_id: str, seq_no: int, origin: str) -> int | None:
        """Record dispatch ``(task_id, seq_no)``; ``None`` if it was seen before (idempotency),
        else how many dispatches the task has had, this one included."""
        key = _dispatch_key(task_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hsetnx(key, str(seq_no), origin)
        pipe.hlen(key)
        claimed, count = pipe.execute()
        return int(count) if claimed else None

    def park_callback(self, task_id: str, payload: dict[str, Any]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(OUTBOX, task_id, json.dumps(payload))
        pipe.zadd(OUTBOX_ORDER, {task_id: time.time()})
        pipe.execute()

    def take_callback(self, task_id: str) -> dict[str, Any] | None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hget(OUTBOX, task_id)
        pipe.hdel(OUTBOX, task_id)
        pipe.zrem(OUTBOX_ORDER, task_id)
        payload, _, _ = pipe.execute()
        return json.loads(payload) if payload is not None else None

    def outbox(self) -> list[str]:
        return list(self._redis.zrange(OUTBOX_ORDER, 0, -1))

    # --- the sampler's keep set (see sampling.KeepSet) ----------------------------------------

    def mark(self, trace_ids: Sequence[str]) -> None:
        """Record that some process keeps these traces (Redis expires each mark after the TTL)."""
        pipe = self._redis.pipeline(transaction=False)
        for trace_id in trace_ids:
            pipe.set(_kept_key(trace_id), 1, ex=int(self.KEEP_TTL_S), nx=True)
        pipe.execute()

    def which(self, trace_ids: Sequence[str]) -> set[str]:
        """The subset of ``trace_ids`` that some process keeps."""
        found: set[str] = set()
        for i in range(0, len(trace_ids), KEEP_CHUNK):
            chunk = list(trace_ids[i : i + KEEP_CHUNK])
            marks = self._redis.mget([_kept_key(t) for t in chunk])
            found.update(t for t, m in zip(chunk, marks, strict=True) if m is not None)
        return found

    def close(self) -> None:
        self._redis.close()
