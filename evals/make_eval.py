"""``make eval``: train and evaluate every method on the development data, write JSON + RESULTS.md.

Why one script: the README's tables must come from one command anyone can rerun. Two parts:

1. The per-dataset table (as ``tamo eval``): each dataset's cases are loaded and aligned once per
   protocol (``alert``: the engine gets the injection time as the alert time; ``window``: only
   the window, the onset is detected), the bundle is trained once, every method and ablation is
   scored with the ranker and T3 cross-validated within each system.
2. The generalisation tables (:mod:`evals.generalise`): for each of ``--seeds`` seeds and both
   protocols, T1/T2 are retrained label-free and every ranker variant (the ablation) is scored
   on leave-one-fault-type-out, leave-one-day/run-out and cross-system folds, with T3's
   macro-F1 and "unknown" rate; figures are mean +- std over the seeds (min-max in the JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from evals.generalise import (
    VARIANTS,
    Scored,
    classify_folds,
    clean,
    run_variant,
    score_case,
    summarise,
)
from evals.harness import METHODS, evaluate
from evals.protocols import PROTOCOLS as FOLD_PROTOCOLS
from evals.results_table import generalisation_markdown, markdown_table, results_table
from tools.learned.labelled_cases import PROTOCOLS, Loaded, dataset_signature, load_aligned
from tools.learned.models import LearnedModels
from tools.learned.train import TrainingCase, train_models

console = Console()
DATASETS = {"nezha": "nezha", "sockshop-rcd": "sockshop-rcd"}
T3_EPOCHS = 40


def _generalisation(
    loaded: dict[str, dict[str, Loaded]], seeds: list[int], out: Path
) -> list[dict[str, Any]]:
    """Every (seed, protocol): retrain T1/T2 per dataset, score all cases, run every fold."""
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for protocol in PROTOCOLS:
            t0 = time.perf_counter()
            scored: list[Scored] = []
            for dataset, by_protocol in loaded.items():
                data = by_protocol[protocol]
                models = _train(data, dataset, seed, with_classifier=False)
                scored += [score_case(c, a, models) for c, _, a, _ in data]
            for variant in VARIANTS:
                for fold in FOLD_PROTOCOLS:
                    rows = run_variant(scored, fold, variant, seed)
                    if variant == "ranker" and fold in ("lofo", "lodo"):
                        preds = classify_folds(scored, fold, rows, seed, T3_EPOCHS)
                        for r in rows:
                            r["fault_type_truth"] = scored[r["_index"]].case.fault_type
                            r["fault_type_pred"] = preds[r["case_id"]]
                    runs.append(
                        {
                            "seed": seed,
                            "protocol": protocol,
                            "fold": fold,
                            "variant": variant,
                            "systems": summarise(rows),
                            "cases": clean(rows),
                        }
                    )
            console.print(
                f"  generalisation seed {seed} {protocol}: {time.perf_counter() - t0:.0f}s"
            )
    (out / "generalisation.json").write_text(json.dumps(runs, indent=1))
    return runs


def _train(loaded: Loaded, dataset: str, seed: int, with_classifier: bool = True) -> LearnedModels:
    cases = [c for c, _, _, _ in loaded]
    return train_models(
        [TrainingCase(a, c) for c, _, a, _ in loaded],
        dataset_signature(dataset, None, cases),
        seed,
        with_classifier=with_classifier,
    )


def run(
    datasets: Path, out: Path, methods: list[str], seeds: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    results: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, dict[str, Loaded]] = {}
    seed = seeds[0]
    for dataset, folder in DATASETS.items():
        root = datasets / folder
        if not root.is_dir():
            console.print(f"[yellow]skipping {dataset}: {root} not found[/]")
            continue
        t0 = time.perf_counter()
        loaded[dataset] = {p: load_aligned(dataset, root, None, protocol=p) for p in PROTOCOLS}
        console.print(
            f"{dataset}: {len(loaded[dataset]['alert'])} cases loaded and aligned under "
            f"{len(PROTOCOLS)} protocols in {time.perf_counter() - t0:.0f}s"
        )
        for protocol in PROTOCOLS:
            data = loaded[dataset][protocol]
            models = _train(data, dataset, seed)
            models.save(out / "models" / f"{dataset}_{protocol}")
            for method in methods if protocol == "alert" else ["tamo"]:
                t1 = time.perf_counter()
                result = evaluate(
                    dataset,
                    root,
                    None,
                    method,
                    loaded=data,
                    models=models,
                    seed=seed,
                    protocol=protocol,
                )
                (out / f"{dataset}_{protocol}_{method}.json").write_text(
                    json.dumps(result, indent=2)
                )
                console.print(f"  {protocol} {method}: {time.perf_counter() - t1:.0f}s")
                results.append(result)
    runs = _generalisation(loaded, seeds, out) if loaded else []
    return results, runs


def write_markdown(
    results: list[dict[str, Any]], runs: list[dict[str, Any]], out: Path, command: str
) -> Path:
    path = out / "RESULTS.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    text = (
        "# Learned RCA evaluation\n\n"
        f"Command: `{command}` ({stamp}; {machine}).\n\n"
        "## Per dataset (ranker and T3 by 5-fold CV within each system)\n\n"
        "T1/T2 label-free; the ranker (with its calibrator) and T3 cross-validated within each "
        "system. s/case: median seconds from raw case files to ranking + fault type, model load "
        "excluded. The protocol (alert / window) is in the method column.\n\n"
        + markdown_table(results)
        + "\n## Generalisation (mean +- std over seeds)\n\n"
        + generalisation_markdown(runs)
    )
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the generalisation runs")
    parser.add_argument("--metrics-only-seeds", default="0,1,2", help="'' skips that eval")
    args = parser.parse_args(argv)
    if not (args.datasets / "README.md").exists() and not any(
        (args.datasets / f).is_dir() for f in DATASETS.values()
    ):
        console.print(f"[yellow]no datasets at {args.datasets}: nothing to evaluate (skipped)[/]")
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    results, runs = run(args.datasets, args.out, methods, seeds)
    if not results:
        console.print("[yellow]no dataset found: nothing evaluated[/]")
        return 0
    console.print(results_table(results))
    if args.metrics_only_seeds:  # the unseen metrics-only system (generated, see its module)
        from evals import metrics_only

        mo_seeds = args.metrics_only_seeds.split(",")
        metrics_only.main(["--seeds", *mo_seeds, "--json", str(args.out / "metrics_only.json")])
    command = "python -m evals.make_eval " + " ".join(sys.argv[1:] if argv is None else argv)
    path = write_markdown(results, runs, args.out, command.strip())
    console.print(path.read_text().split("## Generalisation", 1)[1])
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
