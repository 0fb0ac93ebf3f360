"""``make bench``: run every ``evals/bench_*.py`` module and collect their rows in one table.

Why discovery: each helper owns its own benchmark module exposing
``run(datasets: Path) -> list[dict]``; adding one never touches this file. Rows carry
``benchmark``, ``metric``, ``median``, ``unit``, ``runs`` and ``machine``; a module that fails is
reported as a failed row instead of hiding the others' results.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import evals

console = Console()
COLUMNS = ("benchmark", "metric", "median", "unit", "cpu_s", "ratio", "runs", "load_avg", "machine")


def discover() -> list[str]:
    return sorted(
        f"evals.{m.name}"
        for m in pkgutil.iter_modules(evals.__path__)
        if m.name.startswith("bench_")
    )


def run_all(datasets: Path, only: list[str] | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in discover():
        if only and name.removeprefix("evals.") not in only:
            continue
        try:
            module = importlib.import_module(name)
            rows.extend(module.run(datasets))
        except Exception as exc:  # one broken benchmark must not hide the others
            console.print(f"[red]{name} failed:[/] {exc}")
            console.print(traceback.format_exc(limit=3), style="dim")
            rows.append(
                {"benchmark": name, "metric": "FAILED", "median": None, "unit": str(exc)[:80]}
            )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "# Benchmarks\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--only", default="", help="comma-separated module names (bench_x)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    rows = run_all(args.datasets, only)
    table = Table(title="Benchmarks")
    for c in COLUMNS:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in COLUMNS))
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "BENCH.md").write_text(markdown(rows))
    (args.out / "bench.json").write_text(json.dumps(rows, indent=2, default=str))
    console.print(f"wrote {args.out / 'BENCH.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
