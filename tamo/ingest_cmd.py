"""``tamo ingest``: load telemetry files or a whole labelled dataset into the embedded store.

Why here and not in the store: the store knows nothing about command lines; this module only
resolves paths, shows progress and turns a ``TamoError`` into one red line (exit 2). Each file is
ingested atomically, so a bad file leaves the store exactly as it was before that file, and
re-running the same command is idempotent (a file replaces its previous rows).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from tamo.console import console, err_console, progress_bar
from tools.core.errors import InputError, TamoError
from tools.core.settings import get_settings
from tools.telemetry.ingest import FORMATS, IngestResult, detect_format
from tools.telemetry.store import TelemetryStore
from tools.telemetry.topology import looks_like_topology, read_topology

if TYPE_CHECKING:
    from tools.telemetry.store_client import RemoteStore


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Any ``TamoError`` inside becomes one red line on stderr and exit code 2.

    Unlike ``tamo.console.fail`` the message is escaped (ids like ``spans[4]`` are not markup)
    and never wrapped, so it stays one line however long the path is."""
    try:
        yield
    except TamoError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None


def open_store(path: Path | None, *, read_only: bool = False) -> TelemetryStore | RemoteStore:
    """The store at ``path`` or the configured default (``TAMO_STORE_PATH`` / data dir), through
    ``tamo serve`` when one serves it."""
    from tools.telemetry.store_client import open_store as open_any

    return open_any(path if path is not None else get_settings().store_file, read_only=read_only)


def store_option() -> Path | None:
    return typer.Option(
        None, "--store", help="Store file (default: TAMO_STORE_PATH or the user data dir)."
    )


def dataset_option(what: str) -> str | None:
    """``--dataset``: which labelled dataset ``what`` (its parts and folder: the next two)."""
    return typer.Option(None, "--dataset", "-d", help=f"{what}: nezha | sockshop-rcd.")


def root_option() -> Path | None:
    return typer.Option(None, "--root", help="The dataset's folder.")


def parts_option() -> list[str] | None:
    return typer.Option(
        None, "--parts", "-p", help="Nezha days or Sock Shop runs; repeat. Default: all."
    )


def _files(paths: list[Path], fmt: str | None) -> list[Path]:
    """Files named, plus the telemetry files found under named folders (others are skipped)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".")):
                if fmt is not None or _detectable(f):
                    out.append(f)
        elif p.exists():
            out.append(p)
        else:
            raise InputError("no such file or folder", path=str(p))
    return out


def _detectable(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(65536).decode("utf-8", errors="ignore")
    except OSError:
        return True  # reading it again will report the error with its path
    return detect_format(head) is not None or looks_like_topology(head)


def _is_topology(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(256).decode("utf-8", errors="ignore")
    except OSError:
        return False  # the telemetry reader reports the error with its path
    return looks_like_topology(head)


def ingest_topology(store: TelemetryStore, path: Path) -> None:
    """Store a declared service graph (replaces the previous one) and say what looks odd."""
    topology = read_topology(path)
    store.set_topology(topology)
    console.print(
        f"topology: {len(topology.edges)} edges between {len(topology.services)} services"
        f" from {path}",
        highlight=False,
        soft_wrap=True,
    )
    for w in topology.warnings(set(store.services())):
        console.print(f"[yellow]warning:[/] {path}: {w}", highlight=False, soft_wrap=True)


def _report(results: list[IngestResult], store: TelemetryStore) -> None:
    table = Table(title=f"ingested into {store.path}")
    for col in ("source", "format", "spans", "logs", "metrics"):
        table.add_column(col, justify="right" if col in ("spans", "logs", "metrics") else "left")
    for r in results:
        table.add_row(r.source, r.format, f"{r.spans:,}", f"{r.logs:,}", f"{r.metrics:,}")
    console.print(table)
    for r in results:
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {r.source}: {w}", highlight=False)
    _totals(store)


def _totals(store: TelemetryStore) -> None:
    counts = store.counts()
    console.print(
        "store now holds "
        + ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
        + f" ({store.path})",
        highlight=False,
    )


def ingest_files(store: TelemetryStore, files: list[Path], fmt: str | None) -> list[IngestResult]:
    results: list[IngestResult] = []
    with progress_bar() as progress:
        task = progress.add_task("ingesting", total=len(files))
        for f in files:
            progress.update(task, description=f"ingesting {f.name}")
            try:
                results.append(store.ingest_file(f, fmt))
            except TamoError as exc:
                if results:
                    exc.message += f" ({len(results)} earlier file(s) were ingested)"
                raise
            progress.advance(task)
    return results


def ingest_dataset(store: TelemetryStore, dataset: str, root: Path, parts: list[str] | None) -> int:
    from tools.telemetry.datasets import get_adapter

    adapter = get_adapter(dataset)
    with progress_bar() as progress:
        task = progress.add_task(f"ingesting {dataset}", total=None)
        items = (
            (kind, table, source)
            for kind, source, table in adapter.iter_telemetry(root, parts or None)
        )
        totals = store.insert_many(items, progress=lambda n: progress.advance(task, n))
    return sum(totals.values())


def serve_otlp(listen: str, store_path: Path | None) -> None:
    """``--listen [HOST:]PORT``: the same process as ``tamo serve`` (OTLP, MCP and the store API),
    so other commands keep working while it receives."""
    from tamo.serve_cmd import serve

    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise TamoError(f"expected [HOST:]PORT, got {listen!r}", source="--listen")
    serve(host or "127.0.0.1", int(port), store_path, os.environ.get("TAMO_MCP_TOKEN"), None)


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_command(
        paths: list[Path] | None = typer.Argument(
            None,
            help="Telemetry files or folders (OTLP JSON, Jaeger JSON, Prometheus text, JSONL),"
            ' or a topology.json {"edges": [[caller, callee], ...]}.',
        ),
        fmt: str | None = typer.Option(
            None, "--format", "-f", help=f"Skip detection: {' | '.join(FORMATS)}."
        ),
        store_path: Path | None = store_option(),
        dataset: str | None = dataset_option("Ingest a labelled dataset"),
        root: Path | None = root_option(),
        parts: list[str] | None = parts_option(),
        listen: str | None = typer.Option(
            None,
            "--listen",
            help="Serve OTLP/HTTP (as `tamo serve`) on [HOST:]PORT (default host 127.0.0.1).",
        ),
    ) -> None:
        """Load telemetry into the embedded store (atomic per file; re-ingest replaces)."""
        with one_line_errors():
            if (bool(paths), dataset is not None, listen is not None).count(True) != 1:
                raise TamoError(
                    "give one of PATH..., --dataset with --root, or --listen", source="tamo ingest"
                )
            if listen is not None:
                serve_otlp(listen, store_path)
                return
            if fmt is not None and fmt not in FORMATS:
                raise TamoError(
                    f"unknown format {fmt!r} (one of {', '.join(FORMATS)})", source="--format"
                )
            if dataset is not None and root is None:
                raise TamoError("--dataset needs --root DIR", source="tamo ingest")
            files = _files(paths or [], fmt)
            topologies = [f for f in files if fmt is None and _is_topology(f)]
            files = [f for f in files if f not in topologies]
            with open_store(store_path) as store:
                if dataset is not None and root is not None:
                    rows = ingest_dataset(store, dataset, root, parts)
                    console.print(
                        f"ingested {rows:,} rows of {dataset} from {root}", highlight=False
                    )
                    _totals(store)
                    return
                if not files and not topologies:
                    raise InputError(
                        "no telemetry files found", path=", ".join(map(str, paths or []))
                    )
                if files:
                    _report(ingest_files(store, files, fmt), store)
                for t in topologies:  # after the telemetry: unknown services are then known
                    ingest_topology(store, t)
