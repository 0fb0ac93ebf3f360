"""Closed-loop repair benchmark: every ``tamo demo`` scenario, headless, on this machine.

Why a ``tamo demo`` process per run and sequential: the user's path is the command (process start
to exit, its JSON result), and each scenario starts its own testbed, Prometheus and load on
loopback, which must not compete for the CPU, or MTTR measures the neighbours. Rows follow the
bench convention (``benchmark``, ``metric``, ``median``, ``unit``, ``runs``, ``machine``); the
per-scenario rows carry the root cause, strategy, verification and MTTR of each run.
``datasets`` is unused: the testbed generates its own telemetry.

Run: ``python -m evals.bench_repair [--scenario NAME ...] [--runs N] [--out FILE]``.
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


def run_scenario(name: str, out_dir: Path) -> dict[str, Any]:
    """One ``tamo demo --headless --json`` process; its result plus the process wall time."""
    result = out_dir / "result.json"
    t0 = time.monotonic()
    subprocess.run(
        [
            *(sys.executable, "-m", "tamo.main", "demo", "--scenario", name, "--headless"),
            *("--json", str(result), "--out", str(out_dir / "artifacts")),
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


def run_all(scenarios: list[str] | None = None, runs: int = 1) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    mttrs: list[float] = []
    ok_all = 0
    total = 0
    for name in scenarios or scenarios_listed():
        per: list[dict[str, Any]] = []
        for i in range(runs):
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
                res = run_scenario(name, Path(d))
            per.append(res)
            total += 1
            ok = bool(
                res["root_cause_correct"] and res.get("strategy_correct") and res["recovered"]
            )
            ok_all += ok
            if res["mttr_seconds"] is not None:
                mttrs.append(res["mttr_seconds"])
            rows.append(
                {
                    "benchmark": "repair",
                    "metric": f"{name}/run{i + 1}",
                    "scenario": name,
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
                    "process_seconds": res["process_seconds"],
                    "before": res["before"],
                    "after": res["after"],
                    "success": ok,
                }
            )
        good = [r["mttr_seconds"] for r in per if r["mttr_seconds"] is not None]
        rows.append(
            {
                "benchmark": "repair",
                "metric": f"{name}/mttr",
                "scenario": name,
                "median": statistics.median(good) if good else None,
                "unit": "s",
                "runs": runs,
                "machine": machine(),
                "success_rate": sum(
                    bool(r["root_cause_correct"] and r.get("strategy_correct") and r["recovered"])
                    for r in per
                )
                / runs,
            }
        )
    rows.append(
        {
            "benchmark": "repair",
            "metric": "mttr_all_scenarios",
            "median": statistics.median(mttrs) if mttrs else None,
            "unit": "s",
            "runs": total,
            "machine": machine(),
        }
    )
    rows.append(
        {
            "benchmark": "repair",
            "metric": "closed_loop_success_rate",
            "median": ok_all / total if total else None,
            "unit": "ratio",
            "runs": total,
            "machine": machine(),
        }
    )
    return rows


def run(datasets: Path) -> list[dict[str, Any]]:
    """The bench entry point (``evals.bench`` discovers it); one run of every scenario."""
    return run_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", help="a tamo demo scenario (repeat)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = run_all(args.scenario, args.runs)
    text = json.dumps(rows, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    for r in rows:
        if "success" in r or "success_rate" in r or r["metric"].startswith(("mttr", "closed")):
            print(
                json.dumps(
                    {
                        k: r.get(k)
                        for k in (
                            "metric",
                            "median",
                            "unit",
                            "root_cause",
                            "strategy",
                            "recovered",
                            "success",
                            "success_rate",
                            "detect_seconds",
                        )
                        if r.get(k) is not None
                    },
                    default=str,
                )
            )


if __name__ == "__main__":
    main()
