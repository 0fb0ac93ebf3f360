"""``tamo train`` and ``tamo eval``: train the learned RCA tools and score them on labelled data.

Why here and thin: the work lives in :mod:`tools.learned.train` and :mod:`evals.harness`; this
module parses options, shows progress and prints the result table.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tamo.console import console, fail
from tools.telemetry.errors import TamoError


def _parts(days: str | None, runs: str | None) -> list[str] | None:
    value = days or runs
    if not value:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        dataset: str = typer.Option(..., help="nezha or sockshop-rcd"),
        root: Path = typer.Option(..., help="dataset folder, e.g. ../shared/datasets/nezha"),
        days: str | None = typer.Option(None, help="Nezha days, comma-separated"),
        runs: str | None = typer.Option(None, help="Sock Shop runs, comma-separated"),
        out: Path = typer.Option(..., help="models directory to write"),
        seed: int = typer.Option(0, help="random seed"),
    ) -> None:
        """Train T1 (diffusion, fault-free data), T2 (frequency attention, self-supervised) and T3
        (fault-type classifier, labels) and write verified checkpoints to OUT."""
        from evals.harness import dataset_signature, load_aligned
        from tools.learned.train import TrainingCase, train_models

        try:
            parts = _parts(days, runs)
            with _progress() as bar:
                tasks: dict[str, int] = {}

                def tick(stage: str, done: int, total: int | None = None) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=total)
                    bar.update(tasks[stage], completed=done, total=total)

                loaded = load_aligned(dataset, root, parts, tick)
                cases = [c for c, _, _, _ in loaded]
                models = train_models(
                    [TrainingCase(a, c) for c, _, a, _ in loaded],
                    dataset_signature(dataset, parts, cases),
                    seed=seed,
                    progress=lambda stage, n: tick(stage, n),
                )
            models.save(out)
        except TamoError as exc:
            fail(str(exc))
        console.print(f"[green]trained[/] on {len(cases)} cases -> {out} ({models.describe()})")

    @app.command("eval")
    def eval_(
        dataset: str = typer.Option(..., help="nezha or sockshop-rcd"),
        root: Path = typer.Option(..., help="dataset folder"),
        days: str | None = typer.Option(None, help="Nezha days, comma-separated"),
        runs: str | None = typer.Option(None, help="Sock Shop runs, comma-separated"),
        models: Path | None = typer.Option(
            None, help="models directory (default: train T1/T2 here, label-free)"
        ),
        method: str = typer.Option(
            "tamo", help="tamo, an ablation or a baseline (an unknown name lists them)"
        ),
        classifier: str = typer.Option(
            "cv", help="cv (k-fold within system) or models (the trained T3)"
        ),
        json_out: Path | None = typer.Option(None, "--json", help="write the result JSON here"),
        seed: int = typer.Option(0, help="random seed"),
    ) -> None:
        """Diagnose every labelled case and score the ranking (Acc@k) and fault type (macro-F1)."""
        from evals.harness import evaluate
        from evals.report import results_table

        try:
            with _progress() as bar:
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
                )
        except TamoError as exc:
            fail(str(exc))
        console.print(results_table([result]))
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(result, indent=2))
            console.print(f"wrote {json_out}")
