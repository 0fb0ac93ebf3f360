"""Grafana Loki HTTP API client: LogQL ``query_range``, labels and label values -> ``LOG_SCHEMA``.

Why: logs of a production system already sit in Loki; the RCA tools read the incident window
through :class:`LogSource` and push the filtering (service, substring, regex, trace id) into
LogQL so that only matching lines cross the network. Loki caps a page (5,000 lines by default),
so :meth:`LokiClient.alogs` pages forward through the window.

API reference: https://grafana.com/docs/loki/latest/reference/loki-http-api/
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from tools.telemetry.backends._http import BackendClient, synchronous
from tools.telemetry.backends._labels import pod_of, service_of
from tools.telemetry.model import LOG_SCHEMA, TimeWindow, to_ns
from tools.telemetry.sources import LogQuery

# Labels tried, in order, to select a service when none is configured (OpenTelemetry's
# ``service_name`` first, then the Kubernetes/promtail conventions).
SERVICE_LABEL_CANDIDATES = ("service_name", "app", "service", "job")
LEVEL_LABELS = ("level", "detected_level", "severity", "severity_text")
TRACE_LABELS = ("trace_id", "traceID", "traceid")
SPAN_LABELS = ("span_id", "spanID", "spanid")
DEFAULT_LIMIT = 5_000

TimeLike = datetime | int


def _ns(t: TimeLike) -> int:
    return to_ns(t) if isinstance(t, datetime) else int(t)


def logql_string(value: str) -> str:
    """A LogQL double-quoted string literal (Go string escaping of backslash and quote)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def build_logql(service_label: str, query: LogQuery) -> str:
    """The LogQL for a :meth:`LogSource.logs` call.

    A ``query.query`` that starts with ``{`` is already LogQL and is used as given (a trace id
    filter is still appended); otherwise it is a line filter: ``|=`` for a substring, ``|~`` for
    a regex.
    """
    text = query.query
    if text is not None and text.lstrip().startswith("{"):
        expr = text.strip()
    else:
        if query.services:
            alternatives = "|".join(re.escape(s) for s in query.services)
            matcher = f"{service_label}=~{logql_string(alternatives)}"
        else:
            matcher = f'{service_label}=~".+"'
        expr = "{" + matcher + "}"
        if text:
            expr += f" {'|~' if query.regex else '|='} {logql_string(text)}"
    if query.trace_id:
        expr += f" |= {logql_string(query.trace_id)}"
    return expr


def _first(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


def streams_to_table(
    result: Sequence[Mapping[str, Any]],
    service_label: str | None = None,
    trace_id: str | None = None,
) -> pa.Table:
    """A ``streams`` result (``[{"stream": {...}, "values": [[ns, line, {meta}?], ...]}]``) ->
    ``LOG_SCHEMA`` rows in time order. ``trace_id`` fills the column for lines matched by a trace
    id filter when the stream does not carry one."""
    cols: dict[str, list[Any]] = {f.name: [] for f in LOG_SCHEMA}
    for stream in result:
        stream_labels = stream["stream"]
        for entry in stream["values"]:
            labels = dict(stream_labels)
            if len(entry) > 2 and isinstance(entry[2], Mapping):  # Loki 3 structured metadata
                for group in entry[2].values() if "structuredMetadata" in entry[2] else [entry[2]]:
                    labels.update(group)
            level = _first(labels, LEVEL_LABELS)
            cols["ts_ns"].append(int(entry[0]))
            cols["service"].append(service_of(labels, service_label))
            cols["pod"].append(pod_of(labels))
            cols["severity"].append(level.upper() if level else None)
            cols["body"].append(str(entry[1]))
            cols["trace_id"].append(_first(labels, TRACE_LABELS) or trace_id)
            cols["span_id"].append(_first(labels, SPAN_LABELS))
            cols["attributes"].append(
                json.dumps(dict(sorted(labels.items())), ensure_ascii=False) if labels else None
            )
    table = pa.Table.from_pydict(cols, schema=LOG_SCHEMA)
    return table.sort_by([("ts_ns", "ascending")]) if table.num_rows else table


class LokiClient(BackendClient):
    """Loki HTTP API; implements :class:`tools.telemetry.sources.LogSource`.

    ``service_label`` is the stream label naming a service; unset, the first of
    ``service_name``, ``app``, ``service``, ``job`` that Loki knows is used.
    """

    kind = "loki"

    def __init__(
        self,
        base_url: str,
        *,
        service_label: str | None = None,
        page_size: int = DEFAULT_LIMIT,
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self.service_label = service_label
        self.page_size = page_size

    async def _data(self, path: str, params: Mapping[str, Any]) -> Any:
        body = await self.get_json(path, params)
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise self.malformed("no {'status': 'success', 'data': ...} envelope", path, params)
        return body["data"]

    # -- async API -----------------------------------------------------------------------------

    async def aquery_range(
        self,
        logql: str,
        start: TimeLike,
        end: TimeLike,
        limit: int = DEFAULT_LIMIT,
        direction: str = "forward",
        trace_id: str | None = None,
    ) -> pa.Table:
        """One page of a log query: at most ``limit`` lines in [start, end)."""
        path = "/loki/api/v1/query_range"
        params = {
            "query": logql,
            "start": str(_ns(start)),
            "end": str(_ns(end)),
            "limit": limit,
            "direction": direction,
        }
        data = await self._data(path, params)
        if not isinstance(data, dict) or data.get("resultType") != "streams":
            kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise self.malformed(f"resultType {kind!r} is not 'streams'", path, params)
        try:
            return streams_to_table(data["result"], self.service_label, trace_id)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.malformed(f"streams: {exc!r}", path, params) from None

    async def alabels(
        self, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[str]:
        params = {k: str(_ns(v)) for k, v in (("start", start), ("end", end)) if v is not None}
        return [str(x) for x in await self._data("/loki/api/v1/labels", params) or []]

    async def alabel_values(
        self, label: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[str]:
        params = {k: str(_ns(v)) for k, v in (("start", start), ("end", end)) if v is not None}
        data = await self._data(f"/loki/api/v1/label/{label}/values", params)
        return [str(x) for x in data or []]

    async def aservice_label(self, window: TimeWindow | None = None) -> str:
        """The configured service label, else the first candidate Loki has (cached)."""
        if self.service_label is None:
            known = set(
                await self.alabels(window.start, window.end) if window else await self.alabels()
            )
            self.service_label = next(
                (c for c in SERVICE_LABEL_CANDIDATES if c in known), SERVICE_LABEL_CANDIDATES[0]
            )
        return self.service_label

    async def alogs(self, query: LogQuery) -> pa.Table:
        """``LogSource.logs``: pages forward through the window until ``limit`` lines or the end."""
        window, limit, trace_id = query.window, query.limit, query.trace_id
        label = await self.aservice_label(window)
        logql = build_logql(label, query)
        pages: list[pa.Table] = []
        start, got = window.start_ns, 0
        seen: set[tuple[Any, ...]] = set()  # lines already kept whose timestamp is ``start``
        while limit is None or got < limit:
            page = await self.aquery_range(
                logql, start, window.end_ns, self.page_size, trace_id=trace_id
            )
            rows = [r for r in page.to_pylist() if r["ts_ns"] < window.end_ns]
            fresh = [r for r in rows if tuple(r.values()) not in seen]
            if fresh:
                pages.append(pa.Table.from_pylist(fresh, schema=LOG_SCHEMA))
                got += len(fresh)
            if page.num_rows < self.page_size or not rows:
                break
            # The next page starts at the last timestamp (more lines may share it); lines seen
            # there are skipped. A page of one timestamp with nothing new cannot advance: Loki
            # holds more than a page of lines at that nanosecond, so move past it.
            last = rows[-1]["ts_ns"]
            at_last = {tuple(r.values()) for r in rows if r["ts_ns"] == last}
            if last == start and not fresh:
                start, seen = last + 1, set()
            else:
                seen = seen | at_last if last == start else at_last
                start = last
        table = pa.concat_tables(pages) if pages else LOG_SCHEMA.empty_table()
        return table.slice(0, limit) if limit is not None else table

    # -- sync facade ---------------------------------------------------------------------------

    query_range = synchronous(aquery_range)
    labels = synchronous(alabels)
    label_values = synchronous(alabel_values)
    logs = synchronous(alogs)
