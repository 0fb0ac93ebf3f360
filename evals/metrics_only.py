"""The metrics-only target: an unseen system fed as Prometheus text + topology.json, diagnosed
through ``tamo ingest`` and the agent's ``diagnose_incident`` tool, next to two baselines.

Why this path: it is the one a metrics-only user takes. Each system (seed) gets one store file
filled by the real ``tamo ingest`` command (a process, as a user runs it); for each incident the
agent's tool is called with the incident window and the fault-free hour before it, and no label
(root, fault kind, onset) reaches the engine. With no trained models and no LLM key the engine
runs as a new user's install does. The baselines see the same window and hour: ``baro`` (BARO's
robust scorer, RCAEval's rules) and ``walk`` (personalised PageRank over the declared topology),
both on the counters read as rates (raw cumulative counters would be unfair to them). Several
seeds (a different system each), Acc@1/Acc@3 with the spread over seeds.

    python -m evals.metrics_only --seeds 0 1 2 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from evals.baselines import baro_rank, metric_walk_rank
from evals.metrics_only_synth import FAULTS, SynthCase, generate
from tools.telemetry.model import CaseTelemetry, Incident, LabelledCase, TimeWindow
from tools.telemetry.sources import MetricQuery
from tools.telemetry.topology import read_topology

METHODS = ("tamo", "baro", "walk")


def _window(a: int, b: int) -> TimeWindow:
    return TimeWindow(start=datetime.fromtimestamp(a, UTC), end=datetime.fromtimestamp(b, UTC))


def _ingest(store_file: Path, cases: list[SynthCase]) -> None:
    """``tamo ingest *.prom topology.json --store FILE``, as a user runs it (one system's store
    holds all its incidents, days apart)."""
    files = [str(c.prom) for c in cases] + [str(cases[0].topology)]
    cmd = [sys.executable, "-m", "tamo.main", "ingest", *files, "--store", str(store_file)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"tamo ingest failed: {res.stderr.strip()[:300]}")


def _diagnose(store_file: Path, case: SynthCase) -> list[str]:
    from agent.diagnose_tool import diagnose_incident
    from tools.telemetry.store import TelemetryStore
    from tools.toolbox.context import ToolContext

    with TelemetryStore(store_file, read_only=True) as store:
        incident = Incident(
            window=_window(case.window_start_s, case.end_s),
            baseline=_window(case.start_s, case.window_start_s),
            question="latency and errors up at the gateway",
        )
        ctx = ToolContext(store, store, store, incident=incident)
        out = diagnose_incident(ctx).model_dump()
    alts = [a.rsplit(" ", 1)[0] for a in out["alternatives"]]
    return [s for s in [out["root_cause"], *alts] if s]


def _baseline_case(store_file: Path, case: SynthCase) -> CaseTelemetry:
    from tools.telemetry.store import TelemetryStore

    window = _window(case.window_start_s, case.end_s)
    baseline = _window(case.start_s, case.window_start_s)
    with TelemetryStore(store_file, read_only=True) as store:
        names = store.metric_names()
        metrics = pa.concat_tables([store.series(MetricQuery(n, window)) for n in names])
        base = pa.concat_tables([store.series(MetricQuery(n, baseline)) for n in names])
    label = LabelledCase(
        case_id=case.case_id,
        dataset="metrics-only-synth",
        system="synth",
        service=case.root,
        fault_type=case.fault,
        injected_at=None,  # the baselines get what the engine gets: window + fault-free hour
        window=window,
        baseline=baseline,
    )
    return CaseTelemetry(case=label, metrics=metrics, baseline_metrics=base)


def run_seed(seed: int, cases_per_fault: int, work: Path) -> list[dict[str, Any]]:
    cases = generate(work / f"seed{seed}", seed, cases_per_fault)
    store_file = work / f"seed{seed}" / "store.duckdb"
    _ingest(store_file, cases)
    rows = []
    for case in cases:
        ct = _baseline_case(store_file, case)
        rankings = {
            "tamo": _diagnose(store_file, case),
            "baro": baro_rank(ct),
            "walk": metric_walk_rank(ct, read_topology(case.topology)),
        }
        rows.append({"case_id": case.case_id, "fault": case.fault, "truth": case.root, **rankings})
    return rows


def _acc(rows: list[dict[str, Any]], method: str, k: int) -> float:
    return sum(r["truth"] in r[method][:k] for r in rows) / len(rows) if rows else 0.0


def summary(by_seed: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in METHODS:
        for k in (1, 3):
            vals = [_acc(rows, m, k) for rows in by_seed.values()]
            sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            out[f"{m} Acc@{k}"] = {"mean": round(statistics.mean(vals), 3), "sd": round(sd, 3)}
        for f in FAULTS:
            rows = [r for rs in by_seed.values() for r in rs if r["fault"] == f]
            out.setdefault("by_fault", {}).setdefault(f, {})[m] = round(_acc(rows, m, 1), 3)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cases-per-fault", type=int, default=4)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tamo-metrics-only-") as tmp:
        work = Path(tmp)
        # a new user's install: no trained models, no LLM key (deterministic agent)
        os.environ["TAMO_MODELS_DIR"] = str(work / "no-models")
        os.environ.pop("TAMO_LLM_API_KEY", None)
        from tools.core.settings import get_settings

        get_settings.cache_clear()
        by_seed = {s: run_seed(s, args.cases_per_fault, work) for s in args.seeds}
    result = {"seeds": args.seeds, "summary": summary(by_seed), "cases": by_seed}
    print(_table(result["summary"], args.seeds))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


def _table(s: dict[str, Any], seeds: list[int]) -> str:
    lines = [
        f"metrics-only synthetic system, seeds {seeds} (mean ± sd over seeds)",
        "| method | Acc@1 | Acc@3 | " + " | ".join(f"{f} Acc@1" for f in FAULTS) + " |",
        "|---|---|---|" + "---|" * len(FAULTS),
    ]
    for m in METHODS:
        a1, a3 = s[f"{m} Acc@1"], s[f"{m} Acc@3"]
        per = " | ".join(f"{s['by_fault'][f][m]:.2f}" for f in FAULTS)
        lines.append(
            f"| {m} | {a1['mean']:.2f} ± {a1['sd']:.2f} | {a3['mean']:.2f} ± {a3['sd']:.2f} "
            f"| {per} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
