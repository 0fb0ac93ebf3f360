"""``tamo cases``: list the labelled fault cases of a dataset adapter.

Why: the evaluation harness and the demo select cases by id; an SRE checks what a dataset holds
(services, fault types, UTC injection times, which modalities exist) before running anything.
``--json`` prints the machine-readable list the evaluation labels are compared with.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from tamo.console import console
from tools.telemetry.datasets import ADAPTERS, get_adapter
from tools.telemetry.model import LabelledCase


def case_record(case: LabelledCase) -> dict[str, str | None]:
    """The ``--json`` row: ``injected_at`` ISO 8601 with its UTC offset (``+00:00``) or null."""
    return {
        "case_id": case.case_id,
        "system": case.system,
        "service": case.service,
        "fault_type": case.fault_type,
        "injected_at": case.injected_at.isoformat() if case.injected_at else None,
    }


def _render(cases: list[LabelledCase], dataset: str) -> None:
    table = Table(title=f"{dataset}: {len(cases)} labelled cases", show_lines=False)
    for column in ("case", "system", "service", "fault type", "injected at (UTC)", "modalities"):
        table.add_column(column)
    for case in cases:
        table.add_row(
            case.case_id,
            case.system,
            case.service,
            case.fault_type,
            case.injected_at.isoformat() if case.injected_at else "— (whole anomalous file)",
            ", ".join(m.value for m in case.modalities),
        )
    console.print(table)
    for key, title in (("fault_type", "fault types"), ("service", "root-cause services")):
        summary = Table(title=f"cases per {title}")
        summary.add_column("system")
        summary.add_column(title)
        counts = Counter((c.system, getattr(c, key)) for c in cases)
        for system in sorted({c.system for c in cases}):
            per = sorted(
                ((v, n) for (s, v), n in counts.items() if s == system), key=lambda x: (-x[1], x[0])
            )
            summary.add_row(system, ", ".join(f"{v} {n}" for v, n in per))
        console.print(summary)


def register(app: typer.Typer) -> None:
    @app.command("cases")
    def cases_command(
        dataset: str = typer.Option(
            ..., "--dataset", "-d", help=f"Dataset adapter: {' | '.join(sorted(ADAPTERS))}."
        ),
        root: Path = typer.Option(
            ..., "--root", help="Dataset folder, e.g. ../shared/datasets/nezha."
        ),
        parts: list[str] | None = typer.Option(
            None,
            "--parts",
            "-p",
            help="Nezha days (2022-08-22) or Sock Shop runs (1); repeat or comma-separate. "
            "Default: all.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of tables."),
    ) -> None:
        """List a dataset's labelled fault cases: root-cause service, fault type, injection time."""
        wanted = [p.strip() for item in parts or [] for p in item.split(",") if p.strip()]
        cases = get_adapter(dataset).cases(root, wanted or None)
        if as_json:
            typer.echo(json.dumps([case_record(c) for c in cases], indent=2))
        else:
            _render(cases, dataset)
