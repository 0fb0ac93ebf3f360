"""The ``tamo`` command: one thin module per command group, each wiring the packages below.

Why a table of command names: every command group lives in its own module (``tamo/<group>.py``)
with a ``register(app)`` function, so adding a group never touches another group's code. The
table says which module owns which command and its one-line help, so ``tamo --help`` imports no
command module and ``tamo <cmd>`` imports only the one module that owns ``<cmd>`` — a user never
waits for torch or langgraph to list commands or to ingest a file (a test keeps the table equal
to what the modules register). A ``TamoError`` escaping any command becomes one red line naming
its source and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from tamo.console import fail
from tools.core.errors import TamoError

if TYPE_CHECKING:
    import click


class Command(NamedTuple):
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "ingest": Command(
        "tamo.ingest_cmd",
        "Load telemetry into the embedded store (atomic per file; re-ingest replaces).",
    ),
    "serve": Command(
        "tamo.serve_cmd",
        "Receive OTLP, serve MCP and the store to every other command, on one port.",
    ),
    "query": Command(
        "tamo.query_cmd", "Query the embedded store: traces, logs, metrics, call graph."
    ),
    "cases": Command(
        "tamo.cases_cmd",
        "List a dataset's labelled fault cases: root-cause service, fault type, injection time.",
    ),
    "prometheus": Command(
        "tamo.prometheus_cmd",
        "A local Prometheus over backfilled dataset metrics (offline PromQL).",
    ),
    "traces": Command(
        "tamo.traces_cmd", "Call-chain anomaly analysis and the anomaly knowledge base."
    ),
    "train": Command(
        "tamo.learn_cmd",
        "Train T1 (diffusion, fault-free data), T2 (frequency attention, self-supervised) and T3\n"
        "(fault-type classifier, labels) and write verified checkpoints to OUT.",
    ),
    "diagnose": Command(
        "tamo.diagnose_cmd",
        "Investigate an incident window (or a labelled dataset case) and print the report.",
    ),
    "chat": Command(
        "tamo.diagnose_cmd",
        "Interactive investigation: tool calls shown live, answers streamed, /approve repairs.",
    ),
    "mcp": Command(
        "tamo.mcp_cmd", "Run the MCP server (tools, resources, the investigate_alert prompt)."
    ),
    "slack": Command(
        "tamo.slack_cmd",
        "Run the Slack bot: mention it or use /tamo; approve repairs with the buttons.",
    ),
    "repair": Command("tamo.repair_cmd", "Repair strategies, plans and guarded execution."),
    "audit": Command("tamo.repair_cmd", "The hash-chained repair audit log."),
    "demo": Command(
        "tamo.demo_cmd",
        "Break a live agent platform, let TAMO-RCA find, repair and verify it, and show the audit.",
    ),
    "testbed": Command(
        "tamo.testbed_cmd",
        "The instrumented LLM-agent testbed: start, inject faults, repair, load.",
    ),
}


def load_module_commands(module: str) -> TyperGroup:
    """Every command ``module`` registers, as click commands (imports that module only)."""
    group = typer.Typer()
    importlib.import_module(module).register(group)
    return typer.main.get_group(group)


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` from the table, imports a module only to run it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self._listing:  # the help page needs a name and a line, not the command's imports
            return TyperCommand(name=cmd_name, help=entry.help)
        return load_module_commands(entry.module).get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _root() -> None:
    """TAMO-RCA: find why a cloud-native or LLM-agent platform is failing, and fix it."""


app = typer.Typer(
    name="tamo",
    cls=LazyGroup,
    callback=_root,
    help=_root.__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def run() -> None:
    """Console-script entry point: turns every ``TamoError`` into one line, never a traceback."""
    try:
        app()
    except TamoError as exc:
        try:
            fail(str(exc))
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":
    run()
