"""Opening the telemetry store from any command: through ``tamo serve`` when it runs, else the file.

Why: only one process may open a DuckDB file for writing, and none may read it meanwhile. The
server writes a small *server file* beside the store (``telemetry.duckdb.server.json``: its pid
and URL, never a secret) while it serves; :func:`open_store` finds it, checks the process is
alive and answers for that very store, and returns a :class:`RemoteStore` speaking the store API
(:mod:`tools.telemetry.store_api`). Without a server it opens the file, read-only when the caller
only reads, so two readers never collide either. A lock held by anything else becomes one line
naming the process, not DuckDB's message.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import networkx as nx
import pyarrow as pa
from pydantic_core import to_jsonable_python

from tools.core.errors import BackendError, NotFoundError, TamoError
from tools.core.processes import pid_alive
from tools.telemetry.ingest import IngestResult, parse_file
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore
from tools.telemetry.store_api import frame, read_table

_LOCK_PID = re.compile(r"PID (\d+)")


@dataclass(frozen=True)
class ServerFile:
    """Where a running ``tamo serve`` for one store listens."""

    path: Path  # the server file itself
    store: Path
    url: str
    pid: int

    @staticmethod
    def location(store: Path) -> Path:
        return store.with_name(store.name + ".server.json")

    @classmethod
    def write(cls, store: Path, url: str) -> ServerFile:
        sf = cls(cls.location(store), store.resolve(), url, os.getpid())
        tmp = sf.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"store": str(sf.store), "url": url, "pid": sf.pid}))
        tmp.replace(sf.path)  # readers never see half a file
        return sf

    def remove(self) -> None:
        try:
            if json.loads(self.path.read_text()).get("pid") == self.pid:
                self.path.unlink()
        except (OSError, ValueError):
            pass

    @classmethod
    def find(cls, store: Path) -> ServerFile | None:
        """The live server of ``store``, or ``None`` (no file, a dead process, another store)."""
        path = cls.location(store)
        try:
            doc = json.loads(path.read_text())
            sf = cls(path, Path(doc["store"]), str(doc["url"]), int(doc["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if sf.store != store.resolve() or not pid_alive(sf.pid):
            return None
        return sf


def _token() -> str | None:
    return os.environ.get("TAMO_MCP_TOKEN") or None


class RemoteStore:
    """The store methods the commands and tools use, answered by a running ``tamo serve``."""

    def __init__(self, url: str, store_path: Path | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.path = store_path
        token = _token()
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    # -- wire -------------------------------------------------------------------------------

    def _post(self, method: str, **args: Any) -> Any:
        body = to_jsonable_python(args)  # windows and queries as their JSON
        where = f"{self.url}/api/store/{method}"
        try:
            r = self._http.post(f"/api/store/{method}", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"tamo serve did not answer: {exc}", url=where) from None
        if r.status_code == 404:
            raise NotFoundError(_message(r), source=where)
        if r.status_code != 200:
            raise BackendError(_message(r), url=where, status=r.status_code)
        if r.headers.get("content-type", "").startswith("application/vnd.apache.arrow"):
            return read_table(r.content)
        doc = r.json()
        if "graph" in doc:
            return nx.node_link_graph(doc["graph"], edges="edges", directed=True)
        if "window" in doc:
            return TimeWindow.model_validate(doc["window"]) if doc["window"] else None
        return doc["value"]

    # -- source protocols --------------------------------------------------------------------

    def spans(self, query: TraceQuery) -> pa.Table:
        return self._post("spans", query=query)

    def trace(self, trace_id: str) -> pa.Table:
        return self._post("trace", trace_id=trace_id)

    def call_graph(self, window: TimeWindow) -> nx.DiGraph:
        return self._post("call_graph", window=window)

    def logs(self, query: LogQuery) -> pa.Table:
        return self._post("logs", query=query)

    def series(self, query: MetricQuery) -> pa.Table:
        return self._post("series", query=query)

    # -- catalog -----------------------------------------------------------------------------

    def extent(self, kind: str | None = None) -> TimeWindow | None:
        return self._post("extent", kind=kind)

    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._post("counts").items()}

    def sources(self) -> pa.Table:
        return self._post("sources")

    def services(self, window: TimeWindow | None = None) -> list[str]:
        return list(self._post("services", window=window))

    def metric_names(self) -> list[str]:
        return list(self._post("metric_names"))

    # -- writes (one transaction on the server) -------------------------------------------

    def insert_many(
        self, items: Any, *, progress: Any = None, batch_rows: int = 1_000_000
    ) -> dict[str, int]:
        """Send ``(kind, table, source_id)`` items in requests of about ``batch_rows`` rows."""
        totals: dict[str, int] = {}
        batch: list[tuple[str, pa.Table, str]] = []
        rows = 0
        for item in [*items, None]:
            if item is not None:
                batch.append(item)
                rows += item[1].num_rows
            if batch and (item is None or rows >= batch_rows):
                for k, n in self._insert(batch).items():
                    totals[k] = totals.get(k, 0) + n
                if progress is not None:
                    progress(rows)
                batch, rows = [], 0
        return totals

    def insert(self, kind: str, table: pa.Table, source_id: str) -> int:
        return self._insert([(kind, table, source_id)]).get(kind, 0)

    def _insert(self, batch: list[tuple[str, pa.Table, str]]) -> dict[str, int]:
        header, body = frame(batch)
        where = f"{self.url}/api/store/insert"
        try:
            r = self._http.post(
                "/api/store/insert", content=body, headers={"x-tamo-items": json.dumps(header)}
            )
        except httpx.HTTPError as exc:
            raise BackendError(f"tamo serve did not answer: {exc}", url=where) from None
        if r.status_code != 200:
            raise BackendError(_message(r), url=where, status=r.status_code)
        return {k: int(v) for k, v in r.json()["value"].items()}

    def ingest_file(self, path: Path, fmt: str | None = None) -> IngestResult:
        """Parse here, store there: the file's rows replace its previous ones atomically."""
        parsed = parse_file(path, fmt)
        source_id = str(Path(path).resolve())
        self._insert(
            [
                ("spans", parsed.spans, source_id),
                ("logs", parsed.logs, source_id),
                ("metrics", parsed.metrics, source_id),
            ]
        )
        return IngestResult.of(source_id, parsed)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, TimeWindow) else value


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error") or r.text[:200])
    except ValueError:
        return r.text[:200] or f"HTTP {r.status_code}"


def open_store(path: Path, *, read_only: bool = False) -> TelemetryStore | RemoteStore:
    """The store at ``path``: the running server's when there is one, else the file itself.

    ``read_only`` callers open an existing file without the writer lock, so several readers
    run side by side; a missing file is created empty for them (nothing to read yet).
    """
    server = ServerFile.find(path)
    if server is not None:
        return RemoteStore(server.url, path)
    try:
        return TelemetryStore(path, read_only=read_only and path.exists())
    except TamoError as exc:
        if "lock" not in exc.message.lower():
            raise
        m = _LOCK_PID.search(exc.message)
        holder = f"process {m.group(1)}" if m else "another process"
        raise TamoError(
            f"the store is in use by {holder} (a `tamo ingest` or another writer); wait for it "
            "to finish, or run `tamo serve` so that every command goes through one process",
            source=str(path),
        ) from None
