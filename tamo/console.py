"""Shared rich consoles and the one-red-line error convention of the CLI."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err_console = Console(stderr=True)


def progress_bar(on: Console = err_console) -> Progress:
    """A transient bar of counted steps (what, bar, n/m, elapsed), on stderr unless told."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=on,
        transient=True,
    )


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red line on stderr and exit non-zero: the CLI never shows a traceback."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
