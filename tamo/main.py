"""The ``tamo`` command: one thin module per command group, each wiring the packages below.

Why a registry of module names: every command group lives in its own module (``tamo/<group>.py``)
with a ``register(app)`` function, so adding a group never touches another group's code. A
``TamoError`` escaping any command becomes one red line naming its source and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from tamo.console import fail
from tools.core.errors import TamoError

COMMAND_MODULES = (
    "tamo.ingest_cmd",
    "tamo.serve_cmd",
    "tamo.query_cmd",
    "tamo.cases_cmd",
    "tamo.prometheus_cmd",
    "tamo.traces_cmd",
    "tamo.learn_cmd",
    "tamo.diagnose_cmd",
    "tamo.mcp_cmd",
    "tamo.slack_cmd",
    "tamo.repair_cmd",
    "tamo.demo_cmd",
    "tamo.testbed_cmd",
)

app = typer.Typer(
    name="tamo",
    help="TAMO-RCA: find why a cloud-native or LLM-agent platform is failing, and fix it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a group not built in this checkout
            if exc.name == name:
                continue
            raise
        module.register(app)


_register_all()


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
