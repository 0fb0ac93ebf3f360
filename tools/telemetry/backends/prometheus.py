"""Prometheus HTTP API client (``/api/v1/...``): PromQL, series and labels -> ``METRIC_SCHEMA``.

Why: in production the metrics already live in Prometheus (or Thanos/Mimir, which speak the same
API); the RCA tools read an incident window from there through :class:`MetricSource` instead of
copying data. Async methods are prefixed ``a``; each has a synchronous twin for tools.

API reference: https://prometheus.io/docs/prometheus/latest/querying/api/
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from tools.telemetry.backends._http import BackendClient, synchronous
from tools.telemetry.backends._labels import canonical_labels, pod_of, service_of
from tools.telemetry.model import METRIC_SCHEMA, TimeWindow
from tools.telemetry.sources import MetricQuery

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000
DEFAULT_POINTS = 1_000

TimeLike = datetime | float | int


def _seconds(t: TimeLike) -> str:
    value = t.timestamp() if isinstance(t, datetime) else float(t)
    return f"{value:.3f}"


def _ts_ns(t: Any) -> int:
    # Prometheus timestamps have millisecond precision; round there to keep them exact.
    return round(float(t) * 1000) * 1_000_000


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(name: str, labels: Mapping[str, str] | None = None) -> str:
    """``name{k="v",...}`` with label values quoted as PromQL string literals."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items())) + "}"


def result_to_table(data: Mapping[str, Any], expr: str) -> pa.Table:
    """A ``/query`` or ``/query_range`` ``data`` object -> ``METRIC_SCHEMA``.

    ``name`` is the series' ``__name__`` or, for an expression whose result has none (``rate``,
    ``sum by``), the expression itself.
    """
    kind = data.get("resultType")
    result = data.get("result")
    cols: dict[str, list[Any]] = {f.name: [] for f in METRIC_SCHEMA}

    def add(metric: Mapping[str, str], points: Iterable[Sequence[Any]]) -> None:
        name = metric.get("__name__", expr)
        service, pod, labels = service_of(metric), pod_of(metric), canonical_labels(metric)
        for t, v in points:
            cols["name"].append(name)
            cols["service"].append(service)
            cols["pod"].append(pod)
            cols["labels"].append(labels)
            cols["ts_ns"].append(_ts_ns(t))
            cols["value"].append(float(v))

    if kind == "matrix":
        for item in result:
            add(item["metric"], item.get("values", []))
    elif kind == "vector":
        for item in result:
            if "value" in item:
                add(item["metric"], [item["value"]])
    elif kind == "scalar":
        add({}, [result])
    else:
        raise ValueError(f"resultType {kind!r} is not a matrix, vector or scalar")
    return pa.Table.from_pydict(cols, schema=METRIC_SCHEMA)


def default_step(window: TimeWindow) -> float:
    """A step giving about 1,000 points over ``window``, never below 1 s."""
    return max(1.0, math.ceil(window.seconds / DEFAULT_POINTS))


class PrometheusClient(BackendClient):
    """Prometheus HTTP API; implements :class:`tools.telemetry.sources.MetricSource`."""

    kind = "prometheus"

    async def _data(self, path: str, params: Mapping[str, Any]) -> Any:
        body = await self.get_json(path, params)
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise self.malformed("no {'status': 'success', 'data': ...} envelope", path, params)
        return body["data"]

    async def _table(self, path: str, params: Mapping[str, Any], expr: str) -> pa.Table:
        data = await self._data(path, params)
        try:
            return result_to_table(data, expr)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.malformed(f"query result: {exc}", path, params) from None

    # -- async API -----------------------------------------------------------------------------

    async def aquery(self, expr: str, time: TimeLike | None = None) -> pa.Table:
        """Instant query at ``time`` (default: now)."""
        params = {"query": expr} | ({"time": _seconds(time)} if time is not None else {})
        return await self._table("/api/v1/query", params, expr)

    async def aquery_range(
        self, expr: str, start: TimeLike, end: TimeLike, step_s: float
    ) -> pa.Table:
        """Range query evaluated at ``start``, ``start+step`` ... ``<= end``."""
        params = {"query": expr, "start": _seconds(start), "end": _seconds(end), "step": step_s}
        return await self._table("/api/v1/query_range", params, expr)

    async def aseries_match(
        self, match: Sequence[str], start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[dict[str, str]]:
        """Label sets of the series matching any of the ``match[]`` selectors."""
        params: dict[str, Any] = {"match[]": list(match)}
        if start is not None:
            params["start"] = _seconds(start)
        if end is not None:
            params["end"] = _seconds(end)
        data = await self._data("/api/v1/series", params)
        if not isinstance(data, list):
            raise self.malformed("series data is not a list", "/api/v1/series", params)
        return [dict(item) for item in data]

    async def alabels(self, match: Sequence[str] = ()) -> list[str]:
        """Label names (optionally of the series matching ``match``)."""
        params = {"match[]": list(match)} if match else {}
        data = await self._data("/api/v1/labels", params)
        return [str(x) for x in data]

    async def alabel_values(self, label: str, match: Sequence[str] = ()) -> list[str]:
        """Values of one label (``__name__`` lists metric names)."""
        params = {"match[]": list(match)} if match else {}
        data = await self._data(f"/api/v1/label/{label}/values", params)
        return [str(x) for x in data]

    async def aseries(self, query: MetricQuery) -> pa.Table:
        """``MetricSource.series``: a metric name (``labels`` become matchers) or a PromQL
        expression (``labels`` filter its result), over the half-open ``window``."""
        window, labels, expr = query.window, query.labels, query.name_or_promql
        step = query.step_s or default_step(window)
        if window.seconds / step > MAX_POINTS:
            step = math.ceil(window.seconds / MAX_POINTS)
        is_name = bool(METRIC_NAME_RE.match(expr))
        if is_name:
            expr = selector(expr, labels)
        table = await self.aquery_range(expr, window.start, window.end, step)
        keep = [
            ts < window.end_ns and (is_name or _has_labels(lab, labels))
            for ts, lab in zip(
                table.column("ts_ns").to_pylist(), table.column("labels").to_pylist(), strict=True
            )
        ]
        return table if all(keep) else table.filter(pa.array(keep, pa.bool_()))

    # -- sync facade ---------------------------------------------------------------------------

    query = synchronous(aquery)
    query_range = synchronous(aquery_range)
    series_match = synchronous(aseries_match)
    labels = synchronous(alabels)
    label_values = synchronous(alabel_values)
    series = synchronous(aseries)


def _has_labels(labels_json: str, wanted: Mapping[str, str] | None) -> bool:
    if not wanted:
        return True
    have = json.loads(labels_json)
    return all(have.get(k) == v for k, v in wanted.items())
