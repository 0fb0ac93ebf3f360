"""The embedded telemetry store: one DuckDB file holding spans, logs and metric samples.

Why DuckDB: a columnar engine in-process reads and writes Arrow without copying row by row, so
bulk ingest moves whole tables (no Python per row) and a window query over a day of traces is a
zone-map pruned scan. The store implements all three source protocols (``TraceSource``,
``LogSource``, ``MetricSource``), so every tool runs on a laptop file exactly as on production
backends.

Writes are atomic per source: each row carries the integer key of the source (file) it came from,
and one transaction deletes that source's previous rows and inserts the new ones. Re-ingesting a
file therefore replaces it (idempotent), and a failure leaves the store as it was.
Writes go through one connection under a lock (DuckDB connections are not thread-safe); each
reading thread has its own cursor on the same database, so a diagnosis reads a consistent snapshot
while the OTLP receiver keeps committing (DuckDB's MVCC), and neither waits for the other.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import NotFoundError, TamoError
from tools.core.settings import get_settings
from tools.telemetry.ingest import IngestResult, parse_file
from tools.telemetry.model import CaseTelemetry, TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store_queries import (
    call_graph_sql,
    covering_window,
    logs_sql,
    series_sql,
    service_stats_sql,
    spans_sql,
    trace_sql,
)
from tools.telemetry.store_schema import (
    KINDS,
    SCHEMA_VERSION,
    SOURCES_SCHEMA,
    conform,
    ddl,
    kind_of,
)
from tools.telemetry.topology import Topology

# Rows written in one transaction by ``insert_many``: several DuckDB row groups (122,880 rows),
# so the engine writes whole compressed row groups straight into the file. A transaction's tail
# that does not fill a row group is logged row by row in the WAL and written again at the next
# checkpoint; fewer, larger transactions mean fewer such tails (a Nezha day of spans, ~330k
# rows, cost ~1.4x as much in two transactions of 250k as in one).
BATCH_ROWS = 1_000_000
# DuckDB's row group; a transaction smaller than two of them is appended by one thread anyway,
# so the writer keeps the database's thread count (a global setting readers share) as it is.
ROW_GROUP_ROWS = 122_880

_DEFAULT = object()
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


class TelemetryStore:
    """Spans, logs and metrics in one embedded DuckDB database.

    ``path`` is the database file (default ``Settings().store_file``); ``None`` keeps everything
    in memory. ``read_only`` opens an existing file without taking the writer lock.
    """

    def __init__(self, path: Path | Any | None = _DEFAULT, *, read_only: bool = False) -> None:
        self.path: Path | None = get_settings().store_file if path is _DEFAULT else path
        self._lock = threading.RLock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._next_src: int | None = None  # the next source key (this process is the writer)
        target = ":memory:" if self.path is None else str(self.path)
        if self.path is not None and read_only and not Path(self.path).exists():
            raise NotFoundError(
                "no telemetry store here; run `tamo ingest` first", source=str(self.path)
            )
        try:
            self._con = duckdb.connect(target, read_only=read_only)
        except duckdb.Error as exc:
            raise TamoError(f"cannot open the store: {_first_line(exc)}", source=target) from None
        if not read_only:
            for stmt in ddl():
                self._con.execute(stmt)
            self._con.execute(
                "INSERT OR REPLACE INTO store_meta VALUES ('schema_version', ?)", [SCHEMA_VERSION]
            )

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def from_case(cls, ct: CaseTelemetry) -> TelemetryStore:
        """An in-memory store of one case: its abnormal window and its fault-free baseline."""
        store = cls(None)
        cid = ct.case.case_id
        store.insert_many(
            [
                ("spans", ct.spans, f"case:{cid}:abnormal"),
                ("logs", ct.logs, f"case:{cid}:abnormal"),
                ("metrics", ct.metrics, f"case:{cid}:abnormal"),
                ("spans", ct.baseline_spans, f"case:{cid}:baseline"),
                ("logs", ct.baseline_logs, f"case:{cid}:baseline"),
                ("metrics", ct.baseline_metrics, f"case:{cid}:baseline"),
            ]
        )
        return store

    def close(self) -> None:
        with self._lock:
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def limit_memory(self, limit: str) -> None:
        """Cap DuckDB's buffer pool (e.g. ``"512MB"``): a long-running writer otherwise keeps
        every block it wrote cached, up to 80 % of the machine's memory; above the cap blocks
        are evicted (they are in the file) and large queries spill to disk."""
        if not _MEMORY.match(limit):
            raise TamoError(f"bad memory limit {limit!r} (use e.g. 512MB, 2GB)", source="memory")
        self._con.execute(f"SET memory_limit = '{limit}'")  # checked above: digits and a unit

    # ------------------------------------------------------------------ writes

    def insert(self, kind: str, table: pa.Table, source_id: str) -> int:
        """Replace the ``kind`` rows of ``source_id`` with ``table`` in one transaction."""
        return self.insert_many([(kind, table, source_id)])[kind]

    def insert_many(
        self,
        items: Iterable[tuple[str, pa.Table, str]],
        *,
        batch_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Insert many ``(kind, table, source_id)`` items; rows written per kind.

        Consecutive items are grouped into transactions of about ``batch_rows`` rows; each
        transaction is atomic, so each source is written whole or not at all. ``progress`` is
        called with the number of rows after each transaction.
        """
        totals = dict.fromkeys(KINDS, 0)
        batch: list[tuple[str, pa.Table, str]] = []
        rows = 0
        for kind, table, source_id in items:
            conformed = conform(kind_of(kind), table, source_id)
            batch.append((kind, conformed, source_id))
            rows += conformed.num_rows
            if rows >= batch_rows:
                self._write(batch, totals, progress)
                batch, rows = [], 0
        if batch:
            self._write(batch, totals, progress)
        return totals

    def ingest_file(self, path: Path, fmt: str | None = None) -> IngestResult:
        """Parse one file (format detected unless ``fmt``) and store it atomically."""
        parsed = parse_file(path, fmt)
        source_id = str(Path(path).resolve())
        self._write(
            [
                ("spans", conform(KINDS["spans"], parsed.spans, source_id), source_id),
                ("logs", conform(KINDS["logs"], parsed.logs, source_id), source_id),
                ("metrics", conform(KINDS["metrics"], parsed.metrics, source_id), source_id),
            ],
            dict.fromkeys(KINDS, 0),
            None,
        )
        return IngestResult.of(source_id, parsed)

    def set_topology(self, topology: Topology) -> None:
        """Replace the declared service graph (one transaction: the old one or the new one)."""
        rows = [(a, b, topology.source) for a, b in topology.edges]
        with self._lock, self._transaction():
            self._con.execute("DELETE FROM topology")
            if rows:
                self._con.executemany("INSERT INTO topology VALUES (?, ?, ?)", rows)

    def topology(self) -> Topology | None:
        """The declared service graph, or ``None`` when none was ingested."""
        exists = self._rows("SELECT 1 FROM duckdb_tables() WHERE table_name = 'topology'", [])
        if not exists:  # a store written before topologies, opened read-only
            return None
        rows = self._rows("SELECT caller, callee, source_id FROM topology", [])
        if not rows:
            return None
        return Topology(edges=[(a, b) for a, b, _ in rows], source=rows[0][2])

    def _write(
        self,
        batch: list[tuple[str, pa.Table, str]],
        totals: dict[str, int],
        progress: Callable[[int], None] | None,
    ) -> None:
        latest = {(kind, sid): table for kind, table, sid in batch}  # a later item replaces
        rows = sum(t.num_rows for t in latest.values())
        with self._lock, self._single_threaded(rows), self._transaction():
            keys, known = self._source_keys({sid for _, sid in latest})
            catalog: list[tuple[object, ...]] = []
            per_kind: dict[str, list[tuple[int, int, pa.Table]]] = {}
            for (kind, source_id), table in latest.items():
                src = keys[source_id]
                lo, hi = pc.min_max(table.column(KINDS[kind].time_column)).values()
                lo, hi = lo.as_py(), hi.as_py()
                catalog.append((src, source_id, kind, table.num_rows, lo, hi, time.time_ns()))
                if table.num_rows:
                    srcs = pa.array(np.full(table.num_rows, src, dtype=np.int32))
                    part = (lo, hi, table.append_column("src", srcs))
                    per_kind.setdefault(kind, []).append(part)
            for kind in {k for k, _ in latest}:
                stale = [keys[sid] for k, sid in latest if k == kind and sid in known]
                if stale:  # a re-ingest: the source's previous rows go
                    marks = ", ".join("?" for _ in stale)
                    self._con.execute(f"DELETE FROM {kind} WHERE src IN ({marks})", stale)
                    self._con.execute(
                        f"DELETE FROM sources WHERE kind = ? AND src IN ({marks})", [kind, *stale]
                    )
            row = "(" + ", ".join("?" for _ in SOURCES_SCHEMA) + ")"
            self._con.execute(  # one statement: executemany prepares per row (~1 ms each)
                f"INSERT INTO sources VALUES {', '.join(row for _ in catalog)}",
                [v for entry in catalog for v in entry],
            )
            for kind, parts in per_kind.items():
                data = _time_clustered(parts, KINDS[kind].time_column)
                self._append(kind, data)
                totals[kind] += data.num_rows
        if progress is not None:
            progress(rows)

    def prune(self, older_than_ns: int) -> int:
        """Delete every source whose newest row is older than ``older_than_ns`` (retention);
        rows deleted. Whole sources go, so the catalog stays exact; a receiver's sources are
        sub-second batches, so retention is exact to the second. The freed blocks are reused
        by later writes after the checkpoint."""
        with self._lock, self._transaction():
            stale = [
                src
                for (src,) in self._con.execute(
                    "SELECT src FROM sources GROUP BY src HAVING max(max_ns) < ?", [older_than_ns]
                ).fetchall()
            ]
            if not stale:
                return 0
            marks = ", ".join("?" for _ in stale)
            ((rows,),) = self._con.execute(
                f"SELECT coalesce(sum(rows), 0) FROM sources WHERE src IN ({marks})", stale
            ).fetchall()
            for kind in KINDS:
                self._con.execute(f"DELETE FROM {kind} WHERE src IN ({marks})", stale)
            self._con.execute(f"DELETE FROM sources WHERE src IN ({marks})", stale)
        with self._lock:
            self._con.execute("CHECKPOINT")
        return int(rows)

    def _append(self, table_name: str, data: pa.Table) -> None:
        self._con.register("_tamo_batch", data)
        try:
            self._con.execute(f"INSERT INTO {table_name} SELECT * FROM _tamo_batch")
        finally:
            self._con.unregister("_tamo_batch")

    def _source_keys(self, source_ids: set[str]) -> tuple[dict[str, int], set[str]]:
        """Integer keys of ``source_ids`` (new ones allocated) and which of them are known."""
        ids = sorted(source_ids)
        marks = ", ".join("?" for _ in ids)
        known = dict(
            self._con.execute(
                f"SELECT DISTINCT source_id, src FROM sources WHERE source_id IN ({marks})", ids
            ).fetchall()
        )
        keys = dict(known)
        if self._next_src is None:  # once per process: keys are handed out under the lock
            ((self._next_src,),) = self._con.execute(
                "SELECT coalesce(max(src), 0) + 1 FROM sources"
            ).fetchall()
        for sid in ids:
            if sid not in keys:
                keys[sid] = self._next_src
                self._next_src += 1  # a rolled-back transaction leaves a gap, never a clash
        return keys, set(known)

    @contextmanager
    def _single_threaded(self, rows: int) -> Iterator[None]:
        """Large writes run on one DuckDB thread, reads keep all of them.

        With several threads DuckDB plans an insert as a parallel "Batch Insert" that compresses
        and writes row groups per thread and then merges them; on the Nezha TT day that costs
        ~1.5x the CPU of the single-threaded append (which compresses once, at commit), and on a
        2-core machine the second thread cannot pay that back. A write of less than two row
        groups (every receiver batch) is appended by one thread anyway; switching the setting,
        which is the whole database's, would only cost ~1 ms and starve concurrent readers.
        """
        if rows < 2 * ROW_GROUP_ROWS:
            yield
            return
        ((threads,),) = self._con.execute("SELECT current_setting('threads')").fetchall()
        self._con.execute("SET threads = 1")
        try:
            yield
        finally:
            self._con.execute(f"SET threads = {int(threads)}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._con.begin()
        try:
            yield
        except BaseException:
            self._con.rollback()
            raise
        self._con.commit()

    # ------------------------------------------------------------------ reads (protocols)

    def spans(self, query: TraceQuery) -> pa.Table:
        return self._arrow(*spans_sql(query), KINDS["spans"].schema)

    def trace(self, trace_id: str) -> pa.Table:
        sql, params = trace_sql(trace_id)
        table = self._arrow(sql, params, KINDS["spans"].schema)
        if table.num_rows == 0:
            raise NotFoundError(f"no spans for trace {trace_id}", source=self._name)
        return table

    def call_graph(self, window: TimeWindow) -> nx.DiGraph:
        graph = nx.DiGraph()
        cur = self._reader()
        cur.begin()  # nodes and edges from one snapshot while the writer commits
        try:
            for service, spans, errors in self._rows(*service_stats_sql(window)):
                graph.add_node(service, spans=spans, errors=errors)
            for caller, callee, calls, errors, p50, p95 in self._rows(*call_graph_sql(window)):
                graph.add_edge(
                    caller, callee, calls=int(calls), errors=int(errors), p50_ms=p50, p95_ms=p95
                )
        finally:
            cur.commit()
        return graph

    def logs(self, query: LogQuery) -> pa.Table:
        return self._arrow(*logs_sql(query), KINDS["logs"].schema)

    def series(self, query: MetricQuery) -> pa.Table:
        return self._arrow(*series_sql(query), KINDS["metrics"].schema)

    # ------------------------------------------------------------------ reads (catalog)

    def extent(self, kind: str | None = None) -> TimeWindow | None:
        """The window covering every stored row (of ``kind``), or ``None`` when empty."""
        kinds = [kind_of(kind).name] if kind else list(KINDS)
        marks = ", ".join("?" for _ in kinds)
        lo, hi = self._rows(
            f"SELECT min(min_ns), max(max_ns) FROM sources WHERE kind IN ({marks}) AND rows > 0",
            kinds,
        )[0]
        return None if lo is None else covering_window(lo, hi + 1)

    def counts(self) -> dict[str, int]:
        """Rows stored per kind."""
        rows = self._rows("SELECT kind, sum(rows) FROM sources GROUP BY kind", [])
        return {k: 0 for k in KINDS} | {k: int(n) for k, n in rows}

    def sources(self) -> pa.Table:
        """One row per (source, kind): rows, time range and ingest time."""
        return self._arrow(
            "SELECT source_id, kind, rows, min_ns, max_ns, ingested_ns FROM sources "
            "ORDER BY source_id, kind",
            [],
            None,
        )

    def services(self, window: TimeWindow | None = None) -> list[str]:
        """Services that have spans, logs or metrics (in ``window``)."""
        parts, params = [], []
        for k in KINDS.values():
            cond = "service IS NOT NULL"
            if window is not None:
                cond += f" AND {k.time_column} >= ? AND {k.time_column} < ?"
                params += [window.start_ns, window.end_ns]
            parts.append(f"SELECT DISTINCT service FROM {k.name} WHERE {cond}")
        sql = " UNION ".join(parts) + " ORDER BY service"
        return [r[0] for r in self._rows(sql, params)]

    def metric_names(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT name FROM metrics ORDER BY name", [])]

    # ------------------------------------------------------------------ helpers

    @property
    def _name(self) -> str:
        return str(self.path) if self.path is not None else "in-memory store"

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor (a connection of its own to the same database)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def _arrow(self, sql: str, params: list[object], schema: pa.Schema | None) -> pa.Table:
        try:
            table = self._reader().sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise TamoError(f"query failed: {_first_line(exc)}", source=self._name) from None
        if schema is None or table.schema.equals(schema):
            return table
        return table.cast(schema)

    def _rows(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise TamoError(f"query failed: {_first_line(exc)}", source=self._name) from None


def _time_clustered(parts: list[tuple[int, int, pa.Table]], time_column: str) -> pa.Table:
    """The ``(first, last timestamp, table)`` parts as one table whose row groups each cover a
    narrow time range.

    Parts are ordered by their first timestamp; when every part spans only a small share of the
    batch's time range (minute files, receiver batches) that is enough for zone maps, otherwise
    (whole-day files) the rows are sorted.
    """
    parts = sorted(parts, key=lambda p: p[0])
    data = pa.concat_tables([t for _, _, t in parts])
    lo, hi = parts[0][0], max(last for _, last, _ in parts)
    widths = [last - first for first, last, _ in parts]
    if len(parts) > 1 and max(widths) <= (hi - lo) / 16:
        return data
    return data.sort_by(time_column)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
