"""``tamo demo``: break a live agent platform and watch TAMO-RCA find, repair and verify it.

The run itself is :mod:`tamo.demo_scenario` (the live alert opens an investigation of the
``tamo diagnose`` graph), its printing :mod:`tamo.demo_render`, the scenarios the faults of the
testbed's published catalogue (:mod:`tamo.demo_catalog`); this module is the command line only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from tamo.console import console, fail
from tamo.demo_catalog import published_catalog
from testbed.catalog import FAULTS
from tools.core.settings import get_settings


def demo(
    scenario: str = typer.Option("inference-hang", "--scenario", help="see --list-scenarios"),
    list_scenarios: bool = typer.Option(False, "--list-scenarios", help="list and exit"),
    headless: bool = typer.Option(False, "--headless", help="no live output"),
    json_out: Path | None = typer.Option(None, "--json", help="write the result JSON here"),
    out_dir: Path | None = typer.Option(None, "--out", help="artifacts directory"),
    rate: float = typer.Option(5.0, "--rate", help="tasks per second of load"),
    strategies: Path | None = typer.Option(
        None, "--strategies", help="strategy file/directory instead of the built-in library"
    ),
    param: list[str] = typer.Option(
        [], "--param", help="fault parameter KEY=VALUE (repeat), e.g. hang_s=4"
    ),
    seed: int = typer.Option(1, "--seed", help="load seed: other task ids, other task timings"),
    fault_free_s: float = typer.Option(
        0.0, "--fault-free", help="inject nothing: count the alerts raised over S seconds"
    ),
) -> None:
    """Break a live agent platform, let TAMO-RCA find, repair and verify it, and show the audit."""
    from tamo.demo_render import show_result  # the run loads the detector, graph and plots
    from tamo.demo_scenario import run_scenario
    from tools.repair import AuditLog

    faults = published_catalog().faults
    if list_scenarios:
        for f in faults.values():
            console.print(f"{f.name:<18} {f.description}", highlight=False, soft_wrap=True)
        return
    if scenario not in faults:
        fail(f"unknown scenario {scenario!r}; scenarios: {', '.join(faults)}")
    params = fault_params(param, dict(FAULTS[scenario].params))
    if fault_free_s > 0:
        _fault_free(fault_free_s, rate, out_dir, json_out)
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out_dir or get_settings().data_dir / "demo" / f"{scenario}-{stamp}"
    if not headless:
        console.rule(f"TAMO-RCA closed-loop demo: {scenario}")
    res = run_scenario(
        scenario,
        out_dir,
        quiet=headless,
        rate=rate,
        strategies=strategies,
        params=params,
        seed=seed,
    )
    if json_out is not None:
        slim = {k: v for k, v in res.items() if k != "events"}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(slim, indent=2, default=str))
    if not headless:
        show_result(res, AuditLog(out_dir / "audit"))
    if not res["recovered"]:
        raise typer.Exit(1)


def _fault_free(seconds: float, rate: float, out_dir: Path | None, json_out: Path | None) -> None:
    from tamo.demo_quiet import watch_fault_free

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out_dir or get_settings().data_dir / "demo" / f"fault-free-{stamp}"
    res = watch_fault_free(out_dir, seconds, rate=rate)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res, indent=2))
    console.print(
        f"{res['alerts']} alert(s) in {res['watched_seconds']}s of fault-free traffic "
        f"({res['traces_judged']} traces judged): {res['alerts_per_hour']} per hour",
        highlight=False,
    )


def fault_params(items: list[str], known: dict[str, float]) -> dict[str, float]:
    """``KEY=VALUE`` options as the fault's parameters; a clear error for anything else."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            fail(f"--param {item!r}: expected KEY=VALUE with KEY one of {', '.join(known) or '-'}")
        try:
            out[key] = float(value)
        except ValueError:
            fail(f"--param {item!r}: {value!r} is not a number")
    return out


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
