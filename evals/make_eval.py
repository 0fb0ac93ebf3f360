"""``make eval``: train and evaluate every method on the development data, write JSON + RESULTS.md.

Why one script: the README's table must come from one command anyone can rerun. Each dataset's
cases are loaded and aligned once (their per-case load time is still charged to every learned
method), the bundle is trained once per dataset, every method and ablation is scored, and the
classifier transfer (T3 trained on Online Boutique, tested on Train-Ticket) is reported beside
the cross-validated figures.
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

from evals.harness import METHODS, evaluate
from evals.results_table import markdown_table, results_table
from tools.learned.classifier import train_classifier
from tools.learned.labelled_cases import Loaded, dataset_signature, load_aligned
from tools.learned.models import LearnedModels
from tools.learned.train import TrainingCase, classifier_examples, train_models

console = Console()
DATASETS = {"nezha": "nezha", "sockshop-rcd": "sockshop-rcd"}


def _train(loaded: Loaded, dataset: str, seed: int) -> LearnedModels:
    cases = [c for c, _, _, _ in loaded]
    return train_models(
        [TrainingCase(a, c) for c, _, a, _ in loaded], dataset_signature(dataset, None, cases), seed
    )


def run(datasets: Path, out: Path, methods: list[str], seed: int = 0) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    for dataset, folder in DATASETS.items():
        root = datasets / folder
        if not root.is_dir():
            console.print(f"[yellow]skipping {dataset}: {root} not found[/]")
            continue
        t0 = time.perf_counter()
        loaded = load_aligned(dataset, root, None)
        console.print(
            f"{dataset}: {len(loaded)} cases loaded and aligned in {time.perf_counter() - t0:.0f}s"
        )
        models = _train(loaded, dataset, seed)
        models.save(out / "models" / dataset)
        for method in methods:
            t1 = time.perf_counter()
            result = evaluate(dataset, root, None, method, loaded=loaded, models=models, seed=seed)
            (out / f"{dataset}_{method}.json").write_text(json.dumps(result, indent=2))
            console.print(f"  {method}: {time.perf_counter() - t1:.0f}s")
            results.append(result)
        systems = {c.system for c, _, _, _ in loaded}
        if {"OB", "TT"} <= systems:
            ob = [x for x in loaded if x[0].system == "OB"]
            tt = [x for x in loaded if x[0].system == "TT"]
            ob_models = _train(ob, dataset, seed)
            result = evaluate(
                dataset,
                root,
                None,
                "tamo",
                loaded=tt,
                models=ob_models,
                classifier="models",
                seed=seed,
            )
            (out / f"{dataset}_transfer_OB_to_TT.json").write_text(json.dumps(result, indent=2))
            results.append({**result, "note": "T1-T3 trained on OB only, tested on TT"})
            # the classifier alone: label-free T1/T2 as above, T3 trained on OB labels only
            ob_cases = [TrainingCase(a, c) for c, _, a, _ in ob]
            t3 = train_classifier(classifier_examples(ob_cases, models), seed=seed)
            mixed = LearnedModels(models.diffusion, models.localizer, t3, models.dataset)
            result = evaluate(
                dataset, root, None, "tamo", loaded=tt, models=mixed, classifier="models", seed=seed
            )
            (out / f"{dataset}_transfer_T3_OB_to_TT.json").write_text(json.dumps(result, indent=2))
            results.append({**result, "note": "T3 trained on OB labels only, tested on TT"})
    return results


def write_markdown(results: list[dict[str, Any]], out: Path, command: str) -> Path:
    path = out / "RESULTS.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    text = (
        "# Learned RCA evaluation\n\n"
        f"Command: `{command}` ({stamp}; {machine}).\n\n"
        "Localization is label-free (T1 on fault-free data, T2 self-supervised); the fault type "
        "(T3) is scored by stratified 5-fold cross-validation within each system, except the "
        "transfer row. s/case: median seconds from raw case files to ranking + fault type, model "
        "load excluded.\n\n" + markdown_table(results)
    )
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics-only-seeds", default="0,1,2", help="'' skips that eval")
    args = parser.parse_args(argv)
    if not (args.datasets / "README.md").exists() and not any(
        (args.datasets / f).is_dir() for f in DATASETS.values()
    ):
        console.print(f"[yellow]no datasets at {args.datasets}: nothing to evaluate (skipped)[/]")
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results = run(args.datasets, args.out, methods, args.seed)
    if not results:
        console.print("[yellow]no dataset found: nothing evaluated[/]")
        return 0
    console.print(results_table(results))
    if args.metrics_only_seeds:  # the unseen metrics-only system (generated, see its module)
        from evals import metrics_only

        seeds = args.metrics_only_seeds.split(",")
        metrics_only.main(["--seeds", *seeds, "--json", str(args.out / "metrics_only.json")])
    command = "python -m evals.make_eval " + " ".join(sys.argv[1:] if argv is None else argv)
    console.print(f"wrote {write_markdown(results, args.out, command.strip())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
