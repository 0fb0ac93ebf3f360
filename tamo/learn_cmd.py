"""``tamo train``: train the learned RCA tools on labelled incidents and write checkpoints.

Why here and thin: the work lives in :mod:`tools.learned.train` and
:mod:`tools.learned.labelled_cases`; this module parses options and shows progress. Scoring on
labelled data is the project's evaluation (``python -m evals.evaluate``), not a product command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tamo.console import console, fail, progress_bar
from tools.core.errors import TamoError


def _parts(days: str | None, runs: str | None) -> list[str] | None:
    value = days or runs
    if not value:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


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
        from tools.learned.labelled_cases import dataset_signature, load_aligned
        from tools.learned.train import TrainingCase, train_models

        try:
            parts = _parts(days, runs)
            with progress_bar(console) as bar:
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
