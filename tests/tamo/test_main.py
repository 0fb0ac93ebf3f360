"""The root command: what starting ``tamo`` costs, and the command table it lists from.

Why subprocesses: ``sys.modules`` of the test process is full of whatever other tests imported;
a fresh interpreter is the only place to see what ``tamo --help`` and ``tamo <cmd> --help``
really load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tamo.main import COMMANDS, load_module_commands

REPO = Path(__file__).resolve().parents[2]

# Libraries that take seconds to import: no command may load them just to parse its arguments.
HEAVY = (
    "torch",
    "langgraph",
    "langchain",
    "langchain_core",
    "langchain_openai",
    "sklearn",
    "scipy",
    "fastmcp",
    "matplotlib",
    "pandas",
)


def _heavy_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _heavy_after("import tamo.main") == []


def test_every_command_parses_its_arguments_without_heavy_libraries() -> None:
    """What ``tamo <cmd> --help`` imports: the command's module, for every module at once."""
    modules = sorted({c.module for c in COMMANDS.values()})
    code = "from tamo.main import load_module_commands\n" + "\n".join(
        f"load_module_commands({m!r})" for m in modules
    )
    assert _heavy_after(code) == []


def test_help_exits_zero_and_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tamo.main", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed


@pytest.mark.parametrize("module", sorted({c.module for c in COMMANDS.values()}))
def test_command_table_matches_what_the_module_registers(module: str) -> None:
    """The table is a copy of names and help lines: it must never drift from the modules."""
    group = load_module_commands(module)
    table = {name: c.help for name, c in COMMANDS.items() if c.module == module}
    assert {name: group.commands[name].help for name in group.commands} == table


def test_a_sub_command_help_goes_through_the_lazy_group() -> None:
    from typer.testing import CliRunner

    from tamo.main import app

    result = CliRunner().invoke(app, ["traces", "analyze", "--help"])
    assert result.exit_code == 0, result.output
    assert "--input" in result.output
