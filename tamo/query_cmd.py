"""``tamo query traces|logs|metrics|callgraph``: look at what the embedded store holds.

Why: before (and after) an automated diagnosis an SRE wants to see the raw evidence for a window
— the slow or failing spans, the matching log lines, a metric's samples, who calls whom. The
window is ``--since 15m`` (up to now) or ``--start/--end`` (ISO 8601, UTC unless an offset is
given); with neither, the whole stored time range. ``--json`` prints the rows for scripts.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer
from rich.table import Table

from tamo.console import console
from tamo.ingest_cmd import one_line_errors, open_store, store_option
from tools.core.errors import TamoError
from tools.telemetry.model import TimeWindow, from_ns
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

query_app = typer.Typer(help="Query the embedded store: traces, logs, metrics, call graph.")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise TamoError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h, 1d)", source="--since")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(text: str, option: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TamoError(f"not an ISO 8601 time: {text!r}", source=option) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def resolve_window(
    store: TelemetryStore, since: str | None, start: str | None, end: str | None
) -> TimeWindow:
    """``--since`` up to now, else ``--start/--end``; the stored range fills what is missing."""
    if since is not None:
        if start is not None or end is not None:
            raise TamoError("give --since or --start/--end, not both", source="--since")
        now = datetime.now(UTC)
        return TimeWindow(start=now - parse_duration(since), end=now)
    extent = store.extent()
    if extent is None and (start is None or end is None):
        raise TamoError("the store is empty; run `tamo ingest` first", source=str(store.path))
    lo = parse_time(start, "--start") if start is not None else extent.start  # type: ignore[union-attr]
    hi = parse_time(end, "--end") if end is not None else extent.end  # type: ignore[union-attr]
    if hi <= lo:
        raise TamoError(f"the window ends ({hi.isoformat()}) before it starts", source="--end")
    return TimeWindow(start=lo, end=hi)


def _labels(items: list[str] | None) -> dict[str, str] | None:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TamoError(f"expected k=v, got {item!r}", source="--label")
        out[key] = value
    return out or None


def _iso(ns: int | None) -> str:
    return (
        "" if ns is None else from_ns(ns).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _emit(
    table: pa.Table, limit: int, as_json: bool, title: str, columns: dict[str, object]
) -> None:
    """Rows as JSON, or a rich table of ``columns`` (header -> row -> cell), noting truncation."""
    shown = table.slice(0, limit) if limit else table
    rows = shown.to_pylist()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    more = " (more: raise --limit)" if limit and table.num_rows > limit else ""
    out = Table(title=f"{title}: {len(rows)} row(s){more}")
    for header in columns:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(str(fn(row)) for fn in columns.values()))  # type: ignore[operator]
    console.print(out)


def _option(name: str, annotation: object, default: object) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation
    )


_WINDOW_OPTIONS = [
    _option("store_path", Path | None, store_option()),
    _option(
        "since", str | None, typer.Option(None, "--since", help="Window up to now, e.g. 15m, 2h.")
    ),
    _option(
        "start",
        str | None,
        typer.Option(None, "--start", help="Window start, ISO 8601 (UTC unless offset)."),
    ),
    _option("end", str | None, typer.Option(None, "--end", help="Window end, ISO 8601.")),
]


def over_window(command: Callable[..., None]) -> Callable[..., None]:
    """A ``tamo query`` subcommand over one window of the store: ``command(store, window, ...)``.

    Why: every subcommand takes ``--store`` and ``--since``/``--start``/``--end``, opens the store
    read-only and resolves the window the same way; those options are declared here once and put
    in front of the command's own options in the signature typer reads.
    """
    own = list(inspect.signature(command, eval_str=True).parameters.values())[2:]

    def run(
        store_path: Path | None,
        since: str | None,
        start: str | None,
        end: str | None,
        **options: Any,
    ) -> None:
        with one_line_errors(), open_store(store_path, read_only=True) as store:
            command(store, resolve_window(store, since, start, end), **options)

    run.__name__, run.__doc__ = command.__name__, command.__doc__
    run.__signature__ = inspect.Signature([*_WINDOW_OPTIONS, *own])  # type: ignore[attr-defined]
    return run


LIMIT = typer.Option(100, "--limit", "-n", help="Rows to show (0: all).")
JSON = typer.Option(False, "--json", help="Print JSON rows instead of a table.")
SERVICE = typer.Option(None, "--service", "-s", help="Only these services; repeat.")


@query_app.command("traces")
@over_window
def traces(
    store: TelemetryStore,
    window: TimeWindow,
    service: list[str] | None = SERVICE,
    operation: str | None = typer.Option(None, "--operation", "-o", help="Exact operation."),
    min_duration_ms: float | None = typer.Option(None, "--min-duration-ms", help="Slower than."),
    errors: bool = typer.Option(False, "--errors", help="Only spans with error status."),
    trace_id: str | None = typer.Option(None, "--trace-id", help="One trace's spans."),
    limit: int = LIMIT,
    as_json: bool = JSON,
) -> None:
    """Spans that start in the window and match every filter, oldest first."""
    got = store.spans(
        TraceQuery(
            window,
            services=service or None,
            operation=operation,
            min_duration_ms=min_duration_ms,
            errors_only=errors,
            trace_id=trace_id,
            limit=limit + 1 if limit else None,
        )
    )
    _emit(
        got,
        limit,
        as_json,
        "spans",
        {
            "start (UTC)": lambda r: _iso(r["start_ns"]),
            "trace": lambda r: r["trace_id"],
            "service": lambda r: r["service"],
            "operation": lambda r: r["operation"],
            "ms": lambda r: "" if r["duration_ns"] is None else f"{r['duration_ns'] / 1e6:.1f}",
            "status": lambda r: r["status"] + (f" {r['error_code']}" if r["error_code"] else ""),
        },
    )


@query_app.command("logs")
@over_window
def logs(
    store: TelemetryStore,
    window: TimeWindow,
    service: list[str] | None = SERVICE,
    grep: str | None = typer.Option(None, "--grep", "-g", help="Substring of the message."),
    regex: str | None = typer.Option(None, "--regex", "-e", help="Regular expression (RE2)."),
    trace_id: str | None = typer.Option(None, "--trace-id", help="Lines of one trace."),
    limit: int = LIMIT,
    as_json: bool = JSON,
) -> None:
    """Log lines in the window that match every filter, oldest first."""
    if grep is not None and regex is not None:
        raise TamoError("give --grep or --regex, not both", source="--regex")
    got = store.logs(
        LogQuery(
            window,
            services=service or None,
            query=regex if regex is not None else grep,
            regex=regex is not None,
            trace_id=trace_id,
            limit=limit + 1 if limit else None,
        )
    )
    _emit(
        got,
        limit,
        as_json,
        "log lines",
        {
            "time (UTC)": lambda r: _iso(r["ts_ns"]),
            "service": lambda r: r["service"] or "",
            "level": lambda r: r["severity"] or "",
            "message": lambda r: r["body"][:300],
        },
    )


@query_app.command("metrics")
@over_window
def metrics(
    store: TelemetryStore,
    window: TimeWindow,
    name: str = typer.Option(..., "--name", help="Metric name (exact)."),
    label: list[str] | None = typer.Option(None, "--label", "-l", help="k=v label match; repeat."),
    step: float | None = typer.Option(None, "--step", help="Resample: last value per step (s)."),
    limit: int = LIMIT,
    as_json: bool = JSON,
) -> None:
    """Samples of one metric in the window, per series then time."""
    got = store.series(MetricQuery(name, window, step_s=step, labels=_labels(label)))
    _emit(
        got,
        limit,
        as_json,
        name,
        {
            "time (UTC)": lambda r: _iso(r["ts_ns"]),
            "labels": lambda r: r["labels"],
            "value": lambda r: f"{r['value']:.6g}",
        },
    )


@query_app.command("callgraph")
@over_window
def callgraph(
    store: TelemetryStore,
    window: TimeWindow,
    as_json: bool = JSON,
) -> None:
    """Service call graph of the window: caller -> callee with calls, errors, p50/p95 latency."""
    graph = store.call_graph(window)
    edges = [{"caller": a, "callee": b, **attrs} for a, b, attrs in graph.edges(data=True)]
    _emit(
        pa.Table.from_pylist(edges) if edges else pa.table({}),
        0,
        as_json,
        "calls",
        {
            "caller": lambda r: r["caller"],
            "callee": lambda r: r["callee"],
            "calls": lambda r: r["calls"],
            "errors": lambda r: r["errors"],
            "p50 ms": lambda r: f"{r['p50_ms']:.1f}",
            "p95 ms": lambda r: f"{r['p95_ms']:.1f}",
        },
    )


def register(app: typer.Typer) -> None:
    app.add_typer(query_app, name="query")
