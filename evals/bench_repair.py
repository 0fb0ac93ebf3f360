"""Closed-loop repair benchmark: every ``tamo demo`` scenario, headless, on this machine.

Why a ``tamo demo`` process per run and sequential: the user's path is the command (process start
to exit, its JSON result), and each scenario starts its own testbed, Prometheus and load on
loopback, which must not compete for the CPU, or MTTR measures the neighbours. Rows follow the
bench convention (``benchmark``, ``metric``, ``median``, ``unit``, ``runs``, ``machine``); the
per-scenario rows carry the root cause, strategy, verification and MTTR of each run.
``datasets`` is unused: the testbed generates its own telemetry.

Besides the seven scenarios, the same bench runs ``VARIATIONS`` (other fault intensities, load
rates and load seeds) that nothing was tuned on, and watches fault-free traffic for
``QUIET_S`` seconds to count false alarms (alerts per hour with no fault).

Run: ``python -m evals.bench_repair [--scenario NAME ...] [--runs N] [--variations]
[--quiet-s S] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Variations of the scenarios, fixed on 2026-12-04 at 04:35 UTC before any of them ran and not
# changed after seeing results: (scenario, fault params, load rate tasks/s, load seed). Each
# fault's target module is the testbed's own (its catalogue fixes one target per fault).
VARIATIONS: tuple[tuple[str, dict[str, float], float, int], ...] = (
    ("inference-hang", {"hang_s": 4.0}, 5.0, 2),
    ("inference-hang", {}, 10.0, 1),
    ("model-timeout", {"delay_s": 0.6}, 5.0, 2),
    ("retry-storm", {"max_attempts": 4.0}, 5.0, 2),
    ("callback-failure", {}, 2.0, 1),
    ("state-write-error", {}, 10.0, 2),
    ("span-drop", {}, 10.0, 2),
    ("context-loss", {}, 2.0, 2),
)
QUIET_S = 120.0  # fault-free traffic watched for false alarms


def scenarios_listed() -> list[str]:
    """The scenarios ``tamo demo --list-scenarios`` offers (first word of each line)."""
    out = subprocess.run(
        [sys.executable, "-m", "tamo.main", "demo", "--list-scenarios"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def run_scenario(
    name: str,
    out_dir: Path,
    params: dict[str, float] | None = None,
    rate: float = 5.0,
    seed: int = 1,
) -> dict[str, Any]:
    """One ``tamo demo --headless --json`` process; its result plus the process wall time."""
    result = out_dir / "result.json"
    t0 = time.monotonic()
    extra = [f"--param={k}={v:g}" for k, v in (params or {}).items()]
    subprocess.run(
        [
            *(sys.executable, "-m", "tamo.main", "demo", "--scenario", name, "--headless"),
            *("--json", str(result), "--out", str(out_dir / "artifacts")),
            *(f"--rate={rate:g}", f"--seed={seed}", *extra),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    res: dict[str, Any] = json.loads(result.read_text())
    res["process_seconds"] = round(time.monotonic() - t0, 1)
    return res


def machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )


def _row(label: str, res: dict[str, Any], group: str) -> dict[str, Any]:
    ok = bool(res["root_cause_correct"] and res.get("strategy_correct") and res["recovered"])
    return {
        "benchmark": "repair",
        "metric": label,
        "group": group,
        "scenario": res["scenario"],
        "params": res.get("params"),
        "rate": res.get("rate"),
        "seed": res.get("seed"),
        "median": res["mttr_seconds"],
        "unit": "s",
        "runs": 1,
        "machine": machine(),
        "detected": res["detected"],
        "detect_seconds": res.get("detect_seconds"),
        "root_cause": res["root_cause"],
        "root_cause_correct": res["root_cause_correct"],
        "strategy": res["strategy"],
        "strategy_correct": res.get("strategy_correct"),
        "recovered": res["recovered"],
        "repair_seconds": res.get("repair_seconds"),
        "repair_status": res.get("repair_status"),
        "reason": res.get("reason"),
        "verification": res.get("verification"),
        "process_seconds": res["process_seconds"],
        "before": res["before"],
        "after": res["after"],
        "success": ok,
    }


def _summary(rows: list[dict[str, Any]], group: str) -> list[dict[str, Any]]:
    mine = [r for r in rows if r.get("group") == group]
    mttrs = [r["median"] for r in mine if r["median"] is not None]
    detects = [r["detect_seconds"] for r in mine if r["detect_seconds"] is not None]
    common = {"benchmark": "repair", "runs": len(mine), "machine": machine()}
    return [
        {**common, "metric": f"{group}/mttr_median", "median": _median(mttrs), "unit": "s"},
        {**common, "metric": f"{group}/detect_median", "median": _median(detects), "unit": "s"},
        {
            **common,
            "metric": f"{group}/closed_loop_success_rate",
            "median": sum(r["success"] for r in mine) / len(mine) if mine else None,
            "unit": "ratio",
        },
    ]


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def run_all(
    scenarios: list[str] | None = None,
    runs: int = 1,
    variations: bool = False,
    quiet_s: float = 0.0,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in scenarios_listed() if scenarios is None else scenarios:
        for i in range(runs):
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
                rows.append(_row(f"{name}/run{i + 1}", run_scenario(name, Path(d)), "scenarios"))
    rows += _summary(rows, "scenarios")
    if variations:
        for name, params, rate, seed in VARIATIONS:
            label = "variation/" + ",".join(
                [name, *(f"{k}={v:g}" for k, v in params.items()), f"rate={rate:g}", f"seed={seed}"]
            )
            with tempfile.TemporaryDirectory(prefix=f"bench-var-{name}-") as d:
                res = run_scenario(name, Path(d), params, rate, seed)
            rows.append(_row(label, res, "variations"))
        rows += _summary(rows, "variations")
    if quiet_s > 0:
        rows.append(false_alarms(quiet_s))
    return rows


def false_alarms(seconds: float) -> dict[str, Any]:
    """Alerts per hour on fault-free traffic: ``tamo demo --fault-free S``, the same watcher."""
    with tempfile.TemporaryDirectory(prefix="bench-quiet-") as d:
        out = Path(d) / "quiet.json"
        subprocess.run(
            [
                *(sys.executable, "-m", "tamo.main", "demo", f"--fault-free={seconds:g}"),
                *("--json", str(out), "--out", str(Path(d) / "artifacts")),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=seconds + 300,
        )
        res: dict[str, Any] = json.loads(out.read_text())
    return {
        "benchmark": "repair",
        "metric": "false_alarms_per_hour_no_fault",
        "median": res["alerts_per_hour"],
        "unit": "alerts/h",
        "runs": 1,
        "machine": machine(),
        **res,
    }


def run(datasets: Path) -> list[dict[str, Any]]:
    """The bench entry point (``evals.bench`` discovers it): one run of every scenario and of
    every variation, and the false-alarm watch."""
    return run_all(variations=True, quiet_s=QUIET_S)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", help="a tamo demo scenario (repeat)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--variations", action="store_true", help="also run VARIATIONS")
    ap.add_argument("--no-scenarios", action="store_true", help="only variations / quiet watch")
    ap.add_argument("--quiet-s", type=float, default=0.0, help="watch fault-free traffic S s")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = run_all(
        [] if args.no_scenarios else args.scenario, args.runs, args.variations, args.quiet_s
    )
    text = json.dumps(rows, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    for r in rows:
        keys = (
            *("metric", "median", "unit", "detect_seconds", "root_cause", "strategy"),
            *("recovered", "success", "alerts", "watched_seconds", "traces_judged", "blamed"),
        )
        short = {k: r.get(k) for k in keys if r.get(k) is not None}
        print(json.dumps({**short, "load": r["machine"].rsplit("load ", 1)[-1]}, default=str))


if __name__ == "__main__":
    main()
