"""``tamo diagnose`` (one-shot report) and ``tamo chat`` (interactive investigation).

Why thin: arguments become a tool context and an incident (:mod:`agent.scope`); the
investigation is :class:`agent.run.Investigator`; rendering is the report's. With no LLM key the
report is produced by the deterministic planner and says so.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tamo.console import err_console, fail
from tamo.imports import heavy_imports
from tools.core.settings import get_settings

if TYPE_CHECKING:  # the agent, its tools and the learned models load only when a command runs
    from agent.run import Investigator
    from tools.telemetry.model import Incident
    from tools.toolbox.context import ToolContext


class Format(StrEnum):
    markdown = "markdown"
    json = "json"


Start = Annotated[datetime | None, typer.Option(help="window start, UTC (default: end - --last)")]
End = Annotated[datetime | None, typer.Option(help="window end, UTC (default: now)")]
Last = Annotated[str, typer.Option(help="window length when --start is not given")]
Services = Annotated[list[str] | None, typer.Option("--service", "-s", help="suspected service")]
Dataset = Annotated[str | None, typer.Option(help="labelled dataset: nezha | sockshop-rcd")]
Root = Annotated[Path | None, typer.Option(help="dataset directory")]
Case = Annotated[str | None, typer.Option(help="case id (see `tamo cases`)")]
NoLLM = Annotated[bool, typer.Option("--no-llm", help="ignore a configured LLM")]


def _context(dataset: str | None, root: Path | None, case: str | None) -> ToolContext:
    with heavy_imports():
        from agent.scope import case_context
        from tools.toolbox.context import ToolContext

    settings = get_settings()
    if dataset or case:
        if not (dataset and case):
            fail("--dataset and --case go together")
        return case_context(dataset, root or settings.datasets_root / dataset, case, settings)
    return ToolContext.from_settings(settings)


def _incident(
    ctx: ToolContext,
    start: datetime | None,
    end: datetime | None,
    last: str,
    services: list[str] | None,
    question: str | None,
    trace_id: str | None,
) -> Incident:
    """A dataset case brings its own window; otherwise the window comes from the options."""
    from agent.scope import window_incident

    if ctx.case is not None and ctx.incident is not None:
        return ctx.incident
    return window_incident(start, end, last, services or [], question, trace_id)


def _investigator(ctx: ToolContext, no_llm: bool, **kw: object) -> Investigator:
    with heavy_imports():
        from agent.run import Investigator

    return Investigator(ctx, llm=not no_llm, **kw)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    @app.command()
    def diagnose(
        start: Start = None,
        end: End = None,
        last: Last = "15m",
        service: Services = None,
        question: Annotated[str | None, typer.Option(help="alert text or question")] = None,
        trace_id: Annotated[str | None, typer.Option(help="a trace id to start from")] = None,
        dataset: Dataset = None,
        root: Root = None,
        case: Case = None,
        format: Annotated[Format, typer.Option("--format", "-f")] = Format.markdown,
        repair: Annotated[bool, typer.Option(help="ask for approval and execute the plan")] = False,
        execute: Annotated[
            bool, typer.Option(help="with --repair: really act (default dry run)")
        ] = False,
        approve: Annotated[
            bool, typer.Option(help="approve the plan as your OS account (os:USER), no prompt")
        ] = False,
        resume: Annotated[str | None, typer.Option(help="resume investigation THREAD_ID")] = None,
        no_llm: NoLLM = False,
    ) -> None:
        """Investigate an incident window (or a labelled dataset case) and print the report."""
        ctx = _context(dataset, root, case)
        inv = _investigator(ctx, no_llm)
        if resume:
            result = inv.resume(resume)
        else:
            incident = _incident(ctx, start, end, last, service, question, trace_id)
            if question and ctx.case is not None:
                incident = incident.model_copy(update={"question": question})
            result = inv.diagnose(incident, request_repair=repair, dry_run=not execute)
        if result.pending_approval:
            p = result.pending_approval
            err_console.print(
                f"repair plan [bold]{p['plan_id']}[/] ({p['strategy']}): {'; '.join(p['actions'])}"
                f" — {'REAL RUN' if execute else 'dry run'}"
            )
            from tools.repair.identity import os_principal

            me = os_principal()  # the approver is the OS account, never a typed name
            if approve or (
                sys.stdin.isatty() and typer.confirm(f"approve as {me}?", default=False)
            ):
                result = inv.decide(result.thread_id, True, me)
            else:
                result = inv.decide(result.thread_id, False, me, "not approved")
            if result.refused:
                fail(result.refused)
        if result.report is None:
            fail(f"investigation {result.thread_id} produced no report")
        if format is Format.json:
            sys.stdout.write(result.report.to_json() + "\n")
        else:
            sys.stdout.write(result.report.to_markdown())
        err_console.print(f"investigation id: {result.thread_id}", highlight=False)

    @app.command()
    def chat(
        start: Start = None,
        end: End = None,
        last: Last = "15m",
        service: Services = None,
        dataset: Dataset = None,
        root: Root = None,
        case: Case = None,
        execute: Annotated[
            bool, typer.Option(help="/approve really acts (default dry run)")
        ] = False,
        resume: Annotated[str | None, typer.Option(help="reopen investigation THREAD_ID")] = None,
        no_llm: NoLLM = False,
    ) -> None:
        """Interactive investigation: tool calls shown live, answers streamed, /approve repairs."""
        from agent.chat import HELP, ChatSession

        ctx = _context(dataset, root, case)
        incident = _incident(ctx, start, end, last, service, None, None)

        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        session = ChatSession(_investigator(ctx, no_llm), incident, write, dry_run=not execute)
        write(f"TAMO-RCA chat — {HELP}\n")
        if resume:
            session.resume(resume)
        for line in sys.stdin:
            if not session.handle(line):
                break
            write("> ")
