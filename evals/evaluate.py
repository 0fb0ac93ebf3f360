"""``python -m evals.evaluate``: score one method on the labelled cases of a dataset.

Why here and not in ``tamo``: evaluation is the project's, not the product's; ``evals`` is not
installed with TAMO-RCA, so the CLI never imports it. Run it from a checkout (``make eval`` runs
every method at once). Errors are one red line and exit code 2, as in the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from evals.harness import METHODS, evaluate
from evals.results_table import results_table
from tools.core.errors import TamoError

console = Console()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _parts(days: str | None, runs: str | None) -> list[str] | None:
    value = days or runs
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


@app.command()
def main(
    dataset: str = typer.Option(..., help="nezha or sockshop-rcd"),
    root: Path = typer.Option(..., help="dataset folder"),
    days: str | None = typer.Option(None, help="Nezha days, comma-separated"),
    runs: str | None = typer.Option(None, help="Sock Shop runs, comma-separated"),
    models: Path | None = typer.Option(
        None, help="models directory (default: train T1/T2 here, label-free)"
    ),
    method: str = typer.Option("tamo", help=f"one of: {', '.join(METHODS)}"),
    classifier: str = typer.Option(
        "cv", help="cv (k-fold within system) or models (the trained T3)"
    ),
    json_out: Path | None = typer.Option(None, "--json", help="write the result JSON here"),
    seed: int = typer.Option(0, help="random seed"),
    protocol: str = typer.Option(
        "alert",
        help="alert (the engine gets the injection time as alert time) or window (only the "
        "window: the engine detects the onset)",
    ),
) -> None:
    """Diagnose every labelled case and score the ranking (Acc@k) and fault type (macro-F1)."""
    try:
        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

            result = evaluate(
                dataset,
                root,
                _parts(days, runs),
                method,
                models_dir=models,
                classifier=classifier,
                seed=seed,
                progress=tick,
                protocol=protocol,
            )
    except TamoError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(results_table([result]))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {json_out}")


if __name__ == "__main__":
    app()
