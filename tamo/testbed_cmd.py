"""``tamo testbed``: run the instrumented agent platform, break it, repair it, load it.

Why a background testbed: ``up`` leaves the platform running (its controller records its URL
and pid in ``<workdir>/testbed.json``) so that faults, repairs and load can be driven from
other shells, by ``tamo`` itself, or by a human with ``curl`` on the control API; ``down``
stops every process it started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tamo.console import console, fail
from testbed import FAULTS, MODULES, Testbed, TestbedClient, TestbedError, attach
from testbed.bed import stop_group
from testbed.load import run_load_sync
from tools.core.settings import get_settings

WORKDIR_HELP = "Testbed folder (logs, spans, state); default: <data dir>/testbed."


def _workdir(workdir: Path | None) -> Path:
    return workdir if workdir is not None else get_settings().data_dir / "testbed"


def _client(workdir: Path | None) -> tuple[TestbedClient, dict[str, Any]]:
    info = attach(_workdir(workdir))
    return TestbedClient(info["control_url"]), info


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def _status_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"testbed - model {status['model_version']}, skip {status['skip'] or '-'}")
    for col in ("module", "url", "pid", "up", "restarts", "faults"):
        table.add_column(col, overflow="fold")
    for module in MODULES:
        m = status["modules"][module]
        faults = ", ".join(
            f["name"] + ("" if f["effective"] else f" (bypassed by {', '.join(f['bypassed_by'])})")
            for f in status["faults"]
            if f["target"] == module
        )
        up = "[green]yes[/]" if m["up"] else "[red]no[/]"
        table.add_row(module, m["url"], str(m["pid"]), up, str(m["restarts"]), faults or "-")
    return table


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The instrumented LLM-agent testbed: start, inject faults, repair, load.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="testbed")

    def run(fn: Any) -> Any:
        try:
            return fn()
        except TestbedError as exc:
            fail(str(exc))

    @group.command("up")
    def up(
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
        otlp: str | None = typer.Option(
            None, "--otlp", help="OTLP/HTTP receiver base URL (e.g. tamo's receiver)."
        ),
        sample_ratio: float = typer.Option(1.0, min=0.0, max=1.0, help="Healthy-trace ratio."),
        slow_ms: float = typer.Option(1000.0, min=1.0, help="Spans this slow are always kept."),
    ) -> None:
        """Start every module process in the background and wait until all are healthy."""
        wd = _workdir(workdir)
        if (wd / "testbed.json").exists():
            fail(f"a testbed already runs from {wd} (tamo testbed down first)")
        bed = Testbed(wd, otlp_endpoint=otlp, sample_ratio=sample_ratio, slow_ms=slow_ms)
        run(lambda: bed.start(detach=True))
        console.print(f"[green]testbed up[/]: control API {bed.control_url}")
        console.print(f"AgentRouter {bed.router_url}; logs {bed.log_dir}; spans {bed.spans_dir}")

    @group.command("down")
    def down(workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP)) -> None:
        """Stop the background testbed and every process it started."""
        wd = _workdir(workdir)
        info = run(lambda: attach(wd))
        stop_group(int(info["pid"]))
        (wd / "testbed.json").unlink(missing_ok=True)
        console.print("[green]testbed down[/]")

    @group.command("status")
    def status(
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the control API's JSON."),
    ) -> None:
        """Modules, pids, model, skip flags and active faults."""
        client, _ = run(lambda: _client(workdir))
        data = run(client.status)
        if as_json:
            _print_json(data)
        else:
            console.print(_status_table(data))

    @group.command("faults")
    def faults() -> None:
        """The fault catalogue: target, symptoms and the repair actions that clear or bypass it."""
        table = Table(title="testbed faults")
        for col in ("fault", "target", "scope", "error_code", "cleared by", "bypassed by"):
            table.add_column(col, overflow="fold")
        for f in FAULTS.values():
            table.add_row(
                f.name, f.target, f.scope, f.error_code,
                ", ".join(map(str, f.clears)) or "-", ", ".join(map(str, f.bypasses)) or "-",
            )  # fmt: skip
        console.print(table)

    @group.command("inject")
    def inject(
        fault: str = typer.Argument(..., help=f"One of: {', '.join(FAULTS)}."),
        param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, e.g. hang_s=5."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Inject a fault into its target module."""
        params: dict[str, float] = {}
        for item in param:
            name, sep, value = item.partition("=")
            try:
                if not sep:
                    raise ValueError(item)
                params[name] = float(value)
            except ValueError:
                fail(f"--param {item!r}: expected NAME=NUMBER")
        client, _ = run(lambda: _client(workdir))
        run(lambda: client.inject(fault, **params))
        console.print(f"[yellow]injected[/] {fault} into {FAULTS[fault].target}")

    @group.command("clear")
    def clear(
        fault: str | None = typer.Argument(None, help="The fault to clear; all when omitted."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Clear one fault, or all of them."""
        client, _ = run(lambda: _client(workdir))
        cleared = run(lambda: client.clear(fault))["cleared"]
        console.print(f"[green]cleared[/] {', '.join(cleared) or 'nothing'}")

    @group.command("restart")
    def restart(
        module: str = typer.Argument(..., help=f"One of: {', '.join(MODULES)}."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Really restart a module's process (same port)."""
        client, _ = run(lambda: _client(workdir))
        r = run(lambda: client.restart(module))
        console.print(f"restarted {module}: pid {r['old_pid']} -> {r['pid']} in {r['restart_s']}s")

    @group.command("model")
    def model(
        name: str = typer.Argument(..., help="primary | fallback"),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Switch LLMAdapter to the primary model or the fallback rule engine."""
        client, _ = run(lambda: _client(workdir))
        r = run(lambda: client.switch_model(name))
        console.print(f"model: {r['previous']} -> {r['model']} ({r['model_version']})")

    @group.command("skip")
    def skip(
        module: str = typer.Argument(..., help="Vectorizer | CallbackSender | WebhookDeliver"),
        off: bool = typer.Option(False, "--off", help="Clear the skip flag instead."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Set (or clear) a skip flag on a non-critical module."""
        client, _ = run(lambda: _client(workdir))
        flags = run(lambda: client.set_skip(module, not off))["skip"]
        console.print(f"skip flags: {', '.join(flags) or '-'}")

    @group.command("restore")
    def restore(
        task: str | None = typer.Option(None, "--task", help="Task whose snapshot to restore."),
        step: int | None = typer.Option(None, "--step", min=0, max=3, help="Default: latest."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Restore the last good state (and optionally a task's snapshot)."""
        client, _ = run(lambda: _client(workdir))
        out = run(lambda: client.restore_snapshot(task, step))
        restored = out["restored"]
        where = f"{task} step {restored['step']}" if restored else "state head"
        console.print(f"restored {where}; cleared {', '.join(out['cleared']) or 'nothing'}")

    @group.command("redispatch")
    def redispatch(
        task: str = typer.Argument(..., help="Task id."),
        seq_no: int = typer.Option(..., "--seq", min=1, help="Dispatch number (idempotency)."),
        from_step: int = typer.Option(0, "--from-step", min=0, max=3, help="Resume at this step."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
    ) -> None:
        """Re-dispatch a task from a step, de-duplicated by task id + sequence number."""
        client, _ = run(lambda: _client(workdir))
        out = run(lambda: client.redispatch(task, seq_no, from_step))
        console.print(f"{task}#{seq_no}: {out['status']} {out.get('error_code', '')}".rstrip())

    @group.command("load")
    def load(
        rate: float = typer.Option(10.0, min=0.1, help="Tasks per second."),
        duration: float = typer.Option(10.0, min=0.1, help="Seconds of load."),
        concurrency: int = typer.Option(64, min=1, help="Most tasks in flight."),
        workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Send tasks at a fixed rate for a fixed time, then print latency and failures."""
        _, info = run(lambda: _client(workdir))
        report = run_load_sync(
            info["urls"]["AgentRouter"], rate=rate, duration_s=duration, concurrency=concurrency
        )
        summary = report.summary()
        if as_json:
            _print_json(summary)
            return
        console.print(
            f"sent {summary['sent']}, ok {summary['succeeded']}, failure rate "
            f"{summary['failure_rate']:.1%}, p50 {summary['p50_s'] * 1000:.0f} ms, "
            f"p95 {summary['p95_s'] * 1000:.0f} ms, errors {summary['error_codes'] or '-'}"
        )
