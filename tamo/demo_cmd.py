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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out_dir or get_settings().data_dir / "demo" / f"{scenario}-{stamp}"
    if not headless:
        console.rule(f"TAMO-RCA closed-loop demo: {scenario}")
    res = run_scenario(scenario, out_dir, quiet=headless, rate=rate, strategies=strategies)
    if json_out is not None:
        slim = {k: v for k, v in res.items() if k != "events"}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(slim, indent=2, default=str))
    if not headless:
        show_result(res, AuditLog(out_dir / "audit"))
    if not res["recovered"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
