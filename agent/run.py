"""Running investigations: start, pause for approval, resume (after a decision or a crash).

Why a small facade: the CLI, chat, Slack, the MCP ``diagnose_incident`` tool and the benchmarks
all do the same three things with the graph; the thread id is the investigation id, so a Slack
button click or a restarted process resumes the very investigation it refers to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from agent.graph import build_graph, sqlite_checkpointer
from agent.llm import make_llm
from agent.nodes import AgentDeps
from agent.report_model import Report
from tools.core.errors import NotFoundError
from tools.core.settings import Settings
from tools.telemetry.model import Incident
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import decision_refused
from tools.traces.alerting import TraceAlert

if TYPE_CHECKING:  # the OpenAI client loads only when an LLM is configured
    from langchain_openai import ChatOpenAI


@dataclass
class Investigation:
    thread_id: str
    report: Report | None
    pending_approval: dict[str, Any] | None  # the interrupt payload while waiting for a human
    state: dict[str, Any]
    refused: str | None = None  # why a decision was not accepted (one line, audited)


class Investigator:
    """Runs the investigation graph over one tool context (sources) with one checkpointer."""

    def __init__(
        self,
        ctx: ToolContext,
        *,
        settings: Settings | None = None,
        llm: ChatOpenAI | bool | None = True,
        checkpointer: BaseCheckpointSaver | Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings or ctx.settings
        if llm is True:
            llm = make_llm(self.settings.llm)
        self.deps = AgentDeps(
            ctx=ctx, llm=llm or None, llm_settings=self.settings.llm, on_event=on_event
        )
        if checkpointer is None:
            checkpointer = self.settings.path("checkpoint_path", "checkpoints.sqlite")
        if isinstance(checkpointer, Path):
            checkpointer = sqlite_checkpointer(checkpointer)
        self.checkpointer = checkpointer
        self.graph = build_graph(checkpointer)

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    def _result(self, thread_id: str, out: dict[str, Any]) -> Investigation:
        pending = None
        for intr in out.get("__interrupt__", ()):
            pending = {**intr.value, "thread_id": thread_id}
        return Investigation(thread_id, out.get("report"), pending, out)

    def diagnose(
        self,
        incident: Incident,
        *,
        thread_id: str | None = None,
        request_repair: bool = False,
        dry_run: bool = True,
        alert: TraceAlert | None = None,
    ) -> Investigation:
        """Run a new investigation to its report (or to the approval pause); ``alert`` is the
        live alert that opened it, whose triage becomes evidence."""
        thread_id = thread_id or f"inv-{uuid.uuid4().hex[:12]}"
        state = {
            "incident": incident,
            "request_repair": request_repair,
            "dry_run": dry_run,
            "alert": alert,
        }
        out = self.graph.invoke(state, self._config(thread_id), context=self.deps)
        return self._result(thread_id, out)

    def decide(
        self, thread_id: str, approved: bool, by: str | None, reason: str = ""
    ) -> Investigation:
        """Answer the approval pause of ``thread_id`` as principal ``by`` (``os:``/``slack:``
        ``mcp:``, from the front that authenticated the person); execution (if approved)
        follows. A principal outside ``TAMO_REPAIR_APPROVERS`` (or none) decides nothing: the
        refusal is audited and the investigation keeps waiting for an approver."""
        snap = self._require(thread_id)
        plan = snap.values.get("plan") or {}
        if plan.get("plan_id"):
            refused = decision_refused(self.deps.ctx, plan["plan_id"], by, approved, reason)
            if refused is not None:
                pending = self._result(thread_id, {**snap.values, "__interrupt__": snap.interrupts})
                pending.refused = refused
                return pending
        cmd = Command(resume={"approved": approved, "by": by, "reason": reason})
        out = self.graph.invoke(cmd, self._config(thread_id), context=self.deps)
        return self._result(thread_id, out)

    def resume(self, thread_id: str) -> Investigation:
        """Continue an investigation from its last checkpoint (after a crash or restart)."""
        snap = self._require(thread_id)
        if snap.interrupts:
            return self._result(thread_id, {**snap.values, "__interrupt__": snap.interrupts})
        out = self.graph.invoke(None, self._config(thread_id), context=self.deps)
        return self._result(thread_id, out)

    def remember(self, thread_id: str, question: str, answer: str, keep: int = 10) -> None:
        """Add a follow-up exchange to the investigation's checkpointed conversation."""
        snap = self._require(thread_id)
        turns = [*snap.values.get("conversation", []), {"question": question, "answer": answer}]
        self.graph.update_state(self._config(thread_id), {"conversation": turns[-keep:]})

    def conversation(self, thread_id: str) -> list[dict[str, str]]:
        return list(self._require(thread_id).values.get("conversation", []))

    def _require(self, thread_id: str) -> Any:
        snap = self.graph.get_state(self._config(thread_id))
        if not snap.values:
            raise NotFoundError(f"no investigation {thread_id!r} in the checkpoint store")
        return snap
