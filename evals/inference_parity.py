"""Same weights, two inference codes: do they rank every case the same?

Why: the learned models' inference moved from torch to numpy (:mod:`tools.learned.layers`,
:mod:`tools.learned.torch_rng`) so that diagnosing does not import torch. That is only allowed if
no ranking moves. This script dumps, for every case of a dataset, what the *installed* code
answers (top-20 ranking with scores, calibrated confidence, fault type and its probability) with
the models of ``--models``; run it once with the old tree on ``PYTHONPATH`` and once with the new
one, on the same checkpoint files, then ``--compare`` the two dumps.

The checkpoints carry a hash of the model sources, and a changed source is refused on load
("retrain") — rightly, for a user. Here the point is to run *changed code on unchanged weights*,
so ``--same-weights`` accepts the file's recorded code version for this run only.

    PYTHONPATH=OLD python evals/inference_parity.py --dataset nezha --root D --models M --out a.json
    PYTHONPATH=NEW python evals/inference_parity.py ... --same-weights --out b.json
    python evals/inference_parity.py --compare a.json b.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def dump(dataset: str, root: Path, models_dir: Path, same_weights: bool) -> list[dict[str, Any]]:
    from tools.learned import (
        align_case,
        classify_fault,
        fuse_modalities,
        load_models,
        localize_root_cause,
    )
    from tools.learned.localize import ranker_features
    from tools.telemetry.datasets import get_adapter

    if same_weights:
        from tools.learned import checkpoint

        checkpoint.code_version = _recorded_version(models_dir / dataset)
    models = load_models(models_dir / dataset, dataset)
    adapter = get_adapter(dataset)
    out = []
    for case in adapter.cases(root):
        aligned = align_case(adapter.load_case(root, case))
        fused = fuse_modalities(aligned, models)
        ranking = localize_root_cause(fused, top_k=20, models=models)
        fault = classify_fault(fused, ranking, models)
        probs = models.ranker.probabilities(ranker_features(fused, models.localizer)[0])
        out.append(
            {
                "case": case.case_id,
                "ranking": [r.entity for r in ranking.ranking],
                "scores": [r.score for r in ranking.ranking],
                "candidates": [r.entity for r in ranking.candidates],
                "confidence": ranking.confidence,
                # unrounded: the ranker's probability of every entity and its calibrated confidence
                "raw_probabilities": [float(p) for p in probs],
                "raw_confidence": models.ranker.confidence(probs),
                "anomaly_sum": float(abs(fused.anomaly).sum()),
                "fault_type": fault.fault_type,
                "fault_probability": fault.probability,
            }
        )
        print(case.case_id, out[-1]["ranking"][:3], out[-1]["confidence"], file=sys.stderr)
    return out


def _recorded_version(models_dir: Path) -> Any:
    """``code_version`` replaced by the one each file records (for --same-weights only)."""
    from tools.learned.pt_reader import read_torch_file

    versions = {read_torch_file(p)["code_version"] for p in models_dir.rglob("*.pt")}
    if len(versions) != 1:
        raise SystemExit(f"{models_dir}: checkpoints of {len(versions)} code versions")
    version = versions.pop()
    return lambda: version


def compare(a_path: Path, b_path: Path) -> dict[str, Any]:
    a = {r["case"]: r for r in json.loads(a_path.read_text())}
    b = {r["case"]: r for r in json.loads(b_path.read_text())}
    if a.keys() != b.keys():
        raise SystemExit(f"different cases: {sorted(a.keys() ^ b.keys())[:5]}")

    def diff(key: str) -> float:
        out = 0.0
        for case in a:
            x, y = a[case][key], b[case][key]
            if x is None or y is None:
                out = out if x is y else float("inf")
            else:
                out = max(out, abs(x - y))
        return out

    raw_diff = max(
        (
            abs(x - y)
            for c in a
            for x, y in zip(a[c]["raw_probabilities"], b[c]["raw_probabilities"], strict=True)
        ),
        default=0.0,
    )
    score_diff = max(
        (abs(x - y) for c in a for x, y in zip(a[c]["scores"], b[c]["scores"], strict=False)),
        default=0.0,
    )
    return {
        "cases": len(a),
        "same_ranking": sum(
            a[c]["ranking"] == b[c]["ranking"] and a[c]["candidates"] == b[c]["candidates"]
            for c in a
        ),
        "same_top1": sum(a[c]["ranking"][:1] == b[c]["ranking"][:1] for c in a),
        "same_fault_type": sum(a[c]["fault_type"] == b[c]["fault_type"] for c in a),
        "max_abs_confidence_diff": diff("confidence"),
        "max_abs_fault_probability_diff": diff("fault_probability"),
        "max_abs_score_diff": score_diff,
        "max_abs_raw_confidence_diff": diff("raw_confidence"),
        "max_abs_raw_probability_diff": raw_diff,
        "max_rel_anomaly_sum_diff": max(
            abs(a[c]["anomaly_sum"] - b[c]["anomaly_sum"]) / max(a[c]["anomaly_sum"], 1e-12)
            for c in a
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--models", type=Path, help="folder with one models dir per dataset")
    parser.add_argument("--same-weights", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args()
    if args.compare:
        print(json.dumps(compare(*args.compare)))
        return
    rows = dump(args.dataset, args.root, args.models, args.same_weights)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
