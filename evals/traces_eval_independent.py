"""Call-chain analytics on traces of shapes it was not written for (issue 11, part 5).

Protocol: the generator (``evals/traces_synth_independent.py``) shares nothing with the one the
detector was tuned on; its ``TUNE_SEEDS`` were looked at while changing the analytics, the
``REPORT_SEEDS`` were not. Each seed runs every topology twice: normal behaviour learned from the
input itself (anomalies are 5 % of it) and from a fault-free baseline of the same topology
(another seed). Figures: anomalous-trace F1 and root-span accuracy (share of correctly detected
anomalous traces whose ``root_span`` is the injected module, spelled as in the input), pooled
over the seeds, with the spread (min-max and standard deviation) of the per-seed figures.

``python -m evals.traces_eval_independent --seeds report`` prints the table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from evals.traces_eval import score_detection
from evals.traces_synth_independent import REPORT_SEEDS, TOPOLOGIES, TUNE_SEEDS, generate
from tools.traces import TraceConfig, analyze_traces


def evaluate(seed: int, topology: str, with_baseline: bool, n_traces: int) -> dict[str, Any]:
    data = generate(n_traces, seed=seed, topology=topology)
    baseline = None
    if with_baseline:
        baseline = generate(n_traces, seed=seed + 50_000, topology=topology, anomaly_rate=0.0)
    analysis = analyze_traces(
        data.spans, baseline=baseline.spans if baseline else None, config=TraceConfig(seed=seed)
    )
    row = score_detection(analysis, data.labels)
    per_kind: dict[str, list[int]] = {}
    wrong: Counter[str] = Counter()
    for r in analysis.traces:
        kind, root = data.labels[r.trace_id]
        if kind == "normal" or not r.anomalous:
            continue
        ok = r.root_span == root
        per_kind.setdefault(kind, [0, 0])[0] += ok
        per_kind[kind][1] += 1
        if not ok:
            wrong[f"{kind}: {root} -> {r.root_span} ({r.reason})"] += 1
    row["errors"] = dict(wrong.most_common(6))
    row["per_kind"] = per_kind
    return {"seed": seed, "topology": topology, "baseline": with_baseline, **row}


def _pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    root = sum(x["root_span_accuracy"] * x["tp"] for x in rows) / max(tp, 1)
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for x in rows:
        by_seed.setdefault(x["seed"], []).append(x)
    f1s, roots = [], []
    for sel in by_seed.values():
        s_tp, s_fp, s_fn = (sum(x[k] for x in sel) for k in ("tp", "fp", "fn"))
        sp = s_tp / (s_tp + s_fp) if s_tp + s_fp else 1.0
        sr = s_tp / (s_tp + s_fn) if s_tp + s_fn else 1.0
        f1s.append(2 * sp * sr / (sp + sr) if sp + sr else 0.0)
        roots.append(sum(x["root_span_accuracy"] * x["tp"] for x in sel) / max(s_tp, 1))
    kinds: dict[str, list[int]] = {}
    for x in rows:
        for k, (ok, n) in x["per_kind"].items():
            kinds.setdefault(k, [0, 0])
            kinds[k][0] += ok
            kinds[k][1] += n
    return {
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "root_span_accuracy": round(root, 4),
        "f1_seed_min_max_std": [
            round(min(f1s), 4),
            round(max(f1s), 4),
            round(float(np.std(f1s)), 4),
        ],
        "root_seed_min_max_std": [
            round(min(roots), 4),
            round(max(roots), 4),
            round(float(np.std(roots)), 4),
        ],
        "anomalous_traces": tp + fn,
        "root_by_fault": {k: round(ok / n, 3) for k, (ok, n) in sorted(kinds.items())},
    }


def run(seeds: tuple[int, ...], n_traces: int = 3000) -> dict[str, Any]:
    rows = [
        evaluate(s, topo, b, n_traces) for s in seeds for topo in TOPOLOGIES for b in (False, True)
    ]
    out: dict[str, Any] = {"seeds": list(seeds)}
    for mode, flag in (("learned_from_input", False), ("with_baseline", True)):
        sel = [r for r in rows if r["baseline"] is flag]
        out[mode] = _pooled(sel)
        out[mode]["by_topology"] = {
            t: _pooled([r for r in sel if r["topology"] == t]) for t in TOPOLOGIES
        }
    out["per_run"] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", choices=("tune", "report"), default="report")
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(TUNE_SEEDS if args.seeds == "tune" else REPORT_SEEDS, args.traces)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for mode in ("learned_from_input", "with_baseline"):
        summary = {k: v for k, v in result[mode].items() if k != "by_topology"}
        print(mode, json.dumps(summary))
        for topo, figures in result[mode]["by_topology"].items():
            print(f"  {topo}: f1 {figures['f1']} root {figures['root_span_accuracy']}")
    for r in result["per_run"]:
        if r["errors"]:
            print(r["seed"], r["topology"], "baseline" if r["baseline"] else "input", r["errors"])


if __name__ == "__main__":
    main()
