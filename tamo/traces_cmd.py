"""``tamo traces``: call-chain anomaly analysis of a trace file and the anomaly knowledge base.

Why a file-first command: an SRE holding an OTLP or Jaeger export gets anomalous traces, their
root spans and reasons, clusters and recurring-anomaly incidents without running any backend;
``--json`` writes the machine contract (``traces``, ``clusters``, ``incidents``) for the agent,
the repair loop and scripts. ``tamo traces kb`` inspects and curates the knowledge base that
makes a recurring anomaly come back with its confirmed root cause and fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tamo.console import console, fail
from tamo.imports import heavy_imports
from tools.core.errors import TamoError

if TYPE_CHECKING:  # the analytics (pyarrow, numpy, networkx) load only when a command runs
    from tools.traces import KnowledgeBase

traces_app = typer.Typer(help="Call-chain anomaly analysis and the anomaly knowledge base.")
kb_app = typer.Typer(help="The anomaly knowledge base: fingerprints, root causes, fixes.")
traces_app.add_typer(kb_app, name="kb")


def _kb(path: Path | None) -> KnowledgeBase:
    from tools.traces import KnowledgeBase

    return KnowledgeBase(path)


def _write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


@traces_app.command("analyze")
def analyze_command(
    input_file: Path = typer.Option(..., "--input", "-i", help="OTLP JSON or Jaeger JSON traces."),
    baseline_file: Path | None = typer.Option(
        None, "--baseline", "-b", help="Fault-free traces to learn normal behaviour from."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON result here."),
    logs_file: Path | None = typer.Option(None, "--logs", help="Logs of the window (signatures)."),
    kb_path: Path | None = typer.Option(
        None, "--kb", help="Knowledge base file (default: TAMO_KB_PATH or the data dir)."
    ),
    no_kb: bool = typer.Option(
        False, "--no-kb", help="Do not consult or update the knowledge base."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
) -> None:
    """Find anomalous traces: score, cluster, root span (service::operation) and reason.

    A file over 256 MiB is streamed (JSON Lines, a window at a time); smaller ones are read whole.
    """
    # the analytics load first, frozen out of the collector's sight: the parse below allocates
    # millions of objects, and each collection would walk theirs again
    with heavy_imports():
        from tools.telemetry.ingest import parse_file
        from tools.traces import TraceConfig, analyze_traces
        from tools.traces.stream import open_spans

    try:
        stream = open_spans(input_file)
        parsed = parse_file(input_file) if stream is None else None
        baseline = parse_file(baseline_file).spans if baseline_file else None
        if logs_file:
            logs = parse_file(logs_file).logs
        else:
            logs = parsed.logs if parsed is not None and parsed.logs.num_rows else None
        metrics = parsed.metrics if parsed is not None and parsed.metrics.num_rows else None
        kb = None if no_kb else _kb(kb_path)
        try:
            analysis = analyze_traces(
                parsed.spans if parsed is not None else stream,
                baseline=baseline,
                kb=kb,
                logs=logs,
                metrics=metrics,
                config=TraceConfig(seed=seed),
            )
        finally:
            if kb is not None:
                kb.close()
    except TamoError as exc:
        fail(str(exc))
    if json_out is not None:
        _write_json(json_out, analysis.to_contract())
    console.print(analysis.summary(), highlight=False, markup=False)
    if json_out is not None:
        console.print(f"wrote {json_out}", highlight=False)


@kb_app.command("list")
def kb_list(kb_path: Path | None = typer.Option(None, "--kb", help="Knowledge base file.")) -> None:
    """Known anomaly fingerprints, most recently seen first."""
    try:
        with _kb(kb_path) as kb:
            entries = kb.entries()
    except TamoError as exc:
        fail(str(exc))
    table = Table(title=f"{len(entries)} known anomaly fingerprints")
    for col in ("fingerprint", "root span", "reason", "seen", "confirmed root cause", "fix"):
        table.add_column(col)
    for e in entries:
        fix = next((f["strategy"] for f in reversed(e.fixes) if f["outcome"] == "success"), "")
        table.add_row(
            e.fingerprint_id,
            e.root_span,
            e.reason,
            str(e.occurrences),
            ", ".join(e.confirmed_root_causes),
            fix,
        )
    console.print(table)


@kb_app.command("show")
def kb_show(
    fingerprint_id: str = typer.Argument(..., help="Fingerprint id from `tamo traces kb list`."),
    kb_path: Path | None = typer.Option(None, "--kb", help="Knowledge base file."),
) -> None:
    """One fingerprint as JSON: structure, metric and log signatures, root causes, fixes."""
    try:
        with _kb(kb_path) as kb:
            entry = kb.get(fingerprint_id)
    except TamoError as exc:
        fail(str(exc))
    typer.echo(entry.model_dump_json(indent=1, exclude={"fingerprint": {"structure_vector"}}))


@kb_app.command("confirm")
def kb_confirm(
    fingerprint_id: str = typer.Argument(..., help="Fingerprint id."),
    root_span: str = typer.Option(
        ..., "--root", help="Confirmed root-cause node, service::operation."
    ),
    strategy: str | None = typer.Option(None, "--fix", help="Repair strategy that fixed it."),
    outcome: str = typer.Option("success", "--outcome", help="success | failed"),
    note: str = typer.Option("", "--note", help="Free-text description."),
    kb_path: Path | None = typer.Option(None, "--kb", help="Knowledge base file."),
) -> None:
    """Archive a confirmed root cause (and the fix) so the anomaly is recognised next time."""
    try:
        with _kb(kb_path) as kb:
            kb.confirm(
                fingerprint_id, root_span, strategy=strategy, outcome=outcome, description=note
            )
    except TamoError as exc:
        fail(str(exc))
    console.print(f"confirmed {root_span} for {fingerprint_id}", highlight=False)


@kb_app.command("recluster")
def kb_recluster(
    max_k: int = typer.Option(8, "--max-k", help="Largest K-Means k to try."),
    kb_path: Path | None = typer.Option(None, "--kb", help="Knowledge base file."),
) -> None:
    """Periodic re-clustering of stored fingerprints (K-Means, silhouette-selected k)."""
    try:
        with _kb(kb_path) as kb:
            k, sil = kb.recluster(max_k)
    except TamoError as exc:
        fail(str(exc))
    console.print(f"k={k} silhouette={sil:.3f}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(traces_app, name="traces")
