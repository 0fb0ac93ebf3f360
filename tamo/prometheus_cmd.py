"""``tamo prometheus start|stop|status|query``: a local Prometheus for offline PromQL.

Why: an SRE thinks in PromQL. ``start`` backfills a dataset's metrics (or the embedded store's)
into a TSDB and leaves a real Prometheus running on a loopback port in the background, so the
same queries they would run in production work on a laptop, from ``curl``, Grafana or ``tamo
prometheus query``. The server's pid and URL live in a state file under the data dir, which is
how ``stop``/``status``/``query`` find it from another shell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tamo.console import console
from tamo.ingest_cmd import dataset_option, parts_option, root_option
from tools.core.errors import TamoError
from tools.core.settings import Settings, get_settings
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.local_prometheus import (
    LocalPrometheus,
    LocalPrometheusState,
    OpenMetricsSummary,
)
from tools.telemetry.model import from_ns
from tools.telemetry.sources import MetricQuery


def state_file(settings: Settings) -> Path:
    return settings.data_dir / "prometheus" / "state.json"


def default_workdir(settings: Settings) -> Path:
    return settings.data_dir / "prometheus" / "run"


def read_state(settings: Settings) -> LocalPrometheusState | None:
    path = state_file(settings)
    try:
        return LocalPrometheusState.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise TamoError(f"unreadable state file: {exc}", source=str(path)) from None


def running_server(settings: Settings) -> LocalPrometheus | None:
    """The server a previous ``start`` left running, or ``None`` (a stale state file is removed)."""
    state = read_state(settings)
    if state is None:
        return None
    prom = LocalPrometheus.attach(state)
    if not prom.running:
        state_file(settings).unlink(missing_ok=True)
        return None
    return prom


def parse_time(text: str) -> float:
    """Epoch seconds from ``1661155200``/``1661155200.5`` or ISO 8601 (``2022-08-22T08:00:00Z``;
    a time without offset is UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither epoch seconds nor ISO 8601") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _metric_tables(
    dataset: str | None, root: Path | None, parts: list[str] | None, store_path: Path | None
) -> Iterator[tuple[str, pa.Table]]:
    if dataset is not None:
        if root is None:
            raise typer.BadParameter("--dataset needs --root (the dataset folder)")
        from tools.telemetry.datasets import get_adapter

        adapter = get_adapter(dataset)
        for _, source_id, table in adapter.iter_telemetry(root, parts or None, kinds=["metrics"]):
            yield source_id, table
    if store_path is not None:
        from tools.telemetry.store_client import open_store

        with open_store(store_path, read_only=True) as store:  # through `tamo serve` if it runs
            window = store.extent("metrics")
            if window is not None:
                for name in store.metric_names():
                    yield f"{store_path}:{name}", store.series(MetricQuery(name, window))


def _backfill(prom: LocalPrometheus, tables: Iterator[tuple[str, pa.Table]]) -> int:
    """Read every metric table (progress per file), then build the TSDB in one promtool run."""
    collected: list[pa.Table] = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("reading metrics", total=None)
        for source, table in tables:
            collected.append(table)
            rows = sum(t.num_rows for t in collected)
            progress.update(task, description=f"read {Path(source).name} ({rows:,} samples)")
        progress.update(task, description="writing TSDB blocks (promtool)")
        summary: OpenMetricsSummary = prom.backfill(collected)
    return summary.samples


def example_query(prom: LocalPrometheus) -> tuple[str, str] | None:
    """(PromQL, ISO time) that answers: the first metric at the last backfilled second."""
    if not prom.metric_names or prom.max_ts_ns is None:
        return None
    at = from_ns(prom.max_ts_ns).replace(microsecond=0)
    return min(prom.metric_names), at.isoformat().replace("+00:00", "Z")


def _render(table: pa.Table, expr: str, as_json: bool) -> None:
    rows = table.to_pylist()
    if as_json:
        for r in rows:
            r["time"] = from_ns(r["ts_ns"]).isoformat()
            r["labels"] = json.loads(r["labels"])
            if not math.isfinite(r["value"]):
                r["value"] = str(r["value"])
        typer.echo(json.dumps(rows, indent=2))
        return
    named = any(r["name"] != expr for r in rows)  # an expression's result has no metric name
    out = Table(title=f"{expr}: {len(rows)} samples", title_justify="left")
    for col in ("name", "labels", "time (UTC)", "value")[0 if named else 1 :]:
        out.add_column(col, overflow="fold")
    for r in rows:
        cells = [r["labels"], from_ns(r["ts_ns"]).strftime("%Y-%m-%d %H:%M:%S"), f"{r['value']:g}"]
        out.add_row(*([r["name"], *cells] if named else cells))
    console.print(out)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="A local Prometheus over backfilled dataset metrics (offline PromQL).",
        no_args_is_help=True,
    )
    app.add_typer(group, name="prometheus")

    @group.command("start")
    def start(
        dataset: str | None = dataset_option("Backfill this dataset's metrics"),
        root: Path | None = root_option(),
        parts: list[str] | None = parts_option(),
        from_store: Path | None = typer.Option(
            None, "--from-store", help="Backfill every metric of this embedded store file."
        ),
        port: int | None = typer.Option(None, "--port", help="Loopback port (default: free)."),
        workdir: Path | None = typer.Option(
            None, "--workdir", help="TSDB and config folder (default: <data dir>/prometheus/run)."
        ),
        scrape: list[str] | None = typer.Option(
            None, "--scrape", help="Also scrape host:port, a URL or job=URL every second; repeat."
        ),
    ) -> None:
        """Backfill metrics, then start Prometheus in the background.

        A backfill replaces the TSDB; with no --dataset/--from-store the last one is served.
        """
        settings = get_settings()
        current = running_server(settings)
        if current is not None:
            raise TamoError(f"already running at {current.url}; run `tamo prometheus stop` first")
        prom = LocalPrometheus(workdir or default_workdir(settings), port, scrape or [])
        if dataset is not None or from_store is not None:
            prom.reset()
            samples = _backfill(prom, _metric_tables(dataset, root, parts, from_store))
            console.print(f"backfilled {samples:,} samples of {len(prom.metric_names)} metrics")
        prom.start(detach=True)
        path = state_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(prom.state().model_dump_json())
        console.print(f"[green]Prometheus ready[/] at {prom.url} (pid {prom.pid})")
        example = example_query(prom)
        if example is not None:
            expr, at = example
            lo = from_ns(prom.min_ts_ns or 0).isoformat()
            console.print(f"data from {lo} to {at}", highlight=False)
            for line in (
                f"try: tamo prometheus query '{expr}' --time {at}",
                f"  or: curl '{prom.url}/api/v1/query?query={expr}&time={parse_time(at):.0f}'",
            ):
                console.print(line, highlight=False, markup=False, soft_wrap=True)

    @group.command("stop")
    def stop() -> None:
        """Stop the background Prometheus (SIGTERM, then SIGKILL after 10 s)."""
        settings = get_settings()
        prom = running_server(settings)
        if prom is None:
            console.print("no local Prometheus is running")
            return
        url = prom.url
        prom.stop()
        state_file(settings).unlink(missing_ok=True)
        console.print(f"stopped Prometheus at {url}")

    @group.command("status")
    def status() -> None:
        """Say whether the background Prometheus runs, where, and what data it holds."""
        settings = get_settings()
        prom = running_server(settings)
        if prom is None:
            console.print("not running")
            raise typer.Exit(1)
        console.print(f"running at {prom.url} (pid {prom.pid}), workdir {prom.workdir}")
        if prom.min_ts_ns is not None and prom.max_ts_ns is not None:
            console.print(
                f"{len(prom.metric_names)} backfilled metrics from "
                f"{from_ns(prom.min_ts_ns).isoformat()} to {from_ns(prom.max_ts_ns).isoformat()}"
            )

    @group.command("query")
    def query(
        expr: str = typer.Argument(..., help="PromQL expression."),
        time: str | None = typer.Option(
            None, "--time", help="Instant query time (epoch seconds or ISO 8601)."
        ),
        start: str | None = typer.Option(None, "--start", help="Range query start."),
        end: str | None = typer.Option(None, "--end", help="Range query end."),
        step: float = typer.Option(15.0, "--step", help="Range query step in seconds."),
        url: str | None = typer.Option(
            None, "--url", help="Prometheus URL (default: the local one, else TAMO_PROMETHEUS_URL)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Run PromQL: an instant query (--time) or a range query (--start/--end/--step).

        --time defaults to now, or to the end of the local server's backfilled data.
        """
        settings = get_settings()
        at = parse_time(time) if time else None
        if url is None:
            local = running_server(settings)
            url = local.url if local is not None else settings.backends.prometheus_url
            if local is not None and at is None and local.max_ts_ns is not None:
                at = local.max_ts_ns / 1e9  # backfilled data is old: "now" would find nothing
        if url is None:
            raise TamoError("no Prometheus: run `tamo prometheus start` or set TAMO_PROMETHEUS_URL")
        options = PrometheusClient.options_from_settings(settings.backends)
        with PrometheusClient(url, **options) as client:
            if start is not None or end is not None:
                if start is None or end is None:
                    raise typer.BadParameter("a range query needs both --start and --end")
                result = client.query_range(expr, parse_time(start), parse_time(end), step)
            else:
                result = client.query(expr, at)
        _render(result, expr, as_json)
