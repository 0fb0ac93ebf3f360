"""An interactive investigation: ask, watch the tools run, read the report, ask follow-ups.

Why a class without a terminal in it: ``tamo chat`` (and tests) drive the same session; output
goes through a ``write`` callback, so tool calls appear as they happen and LLM answers stream
token by token. Without an LLM, follow-up questions are answered from the report's sections.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from agent.prompts import render
from agent.report_model import Report
from agent.run import Investigation, Investigator
from tools.repair.identity import os_principal
from tools.telemetry.model import Incident
from tools.telemetry.untrusted import model_json, quote

HELP = (
    "commands: /report (markdown), /approve [REASON], /deny [REASON], /quit; "
    "anything else is a question (the first one starts the investigation)"
)

_SECTIONS = {
    "evidence": lambda r: "\n".join(
        f"[{e.id}] {e.summary} ({e.link or e.query})" for e in r.analysis.evidence
    ),
    "impact": lambda r: r.impact.model_dump_json(indent=1),
    "priority": lambda r: f"{r.priority.level}: {r.priority.rule}",
    "remediation": lambda r: r.remediation.model_dump_json(indent=1, exclude_defaults=True),
    "alternative": lambda r: "\n".join(
        f"{h.entity} {h.confidence:.0%} {h.why}" for h in r.alternatives
    ),
    "not checked": lambda r: "\n".join(r.not_checked),
}


class ChatSession:
    def __init__(
        self,
        investigator: Investigator,
        incident: Incident,
        write: Callable[[str], None],
        *,
        request_repair: bool = True,
        dry_run: bool = True,
        principal: str | None = None,
    ) -> None:
        self.inv = investigator
        self.incident = incident
        self.write = write
        self.request_repair = request_repair
        self.dry_run = dry_run
        self.current: Investigation | None = None
        self.principal = principal or os_principal()
        investigator.deps.on_event = self._event

    def _event(self, ev: dict[str, Any]) -> None:
        if ev["type"] == "tool_call":
            args = ", ".join(f"{k}={v!r}" for k, v in ev["args"].items())
            self.write(f"→ {ev['tool']}({args})\n")
        elif ev["type"] == "tool_result" and ev["summary"]:
            self.write(f"  ← {ev['summary'][:160]}\n")
        elif ev["type"] == "llm":
            self.write(f"  (model) {ev['text'][:200]}\n")
        elif ev["type"] == "tool_error":
            self.write(f"  ✗ {quote(ev['error'], 160)}\n")

    @property
    def report(self) -> Report | None:
        return self.current.report if self.current else None

    def handle(self, line: str) -> bool:
        """Process one input line; ``False`` when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        if line == "/help":
            self.write(HELP + "\n")
        elif line == "/report":
            self.write(self.report.to_markdown() if self.report else "no investigation yet\n")
        elif line.startswith(("/approve", "/deny")):
            self._decide(line)
        elif self.current is None:
            self._start(line)
        else:
            self._follow_up(line)
        return True

    def _start(self, question: str) -> None:
        incident = self.incident.model_copy(update={"question": question})
        self.current = self.inv.diagnose(
            incident, request_repair=self.request_repair, dry_run=self.dry_run
        )
        self._show(self.current)

    def _show(self, cur: Investigation) -> None:
        if cur.report is not None:
            self.write(cur.report.to_markdown())
        if cur.pending_approval:
            p = cur.pending_approval
            self.write(
                f"\nRepair plan {p['plan_id']} ({p['strategy']}) waits for approval: "
                f"{'; '.join(p['actions'])}\n/approve or /deny (as {self.principal})\n"
            )

    def _decide(self, line: str) -> None:
        if self.current is None or not self.current.pending_approval:
            self.write("nothing is waiting for approval\n")
            return
        parts = line.split(maxsplit=1)
        approved = parts[0] == "/approve"
        reason = parts[1] if len(parts) > 1 else ""
        # the approver is the OS account running the chat, never a name typed here
        self.current = self.inv.decide(self.current.thread_id, approved, self.principal, reason)
        if self.current.refused:
            self.write(self.current.refused + "\n")
        self._show(self.current)

    def _follow_up(self, question: str) -> None:
        report = self.report
        if report is None:
            self.write("the investigation has no report yet\n")
            return
        llm = self.inv.deps.llm
        thread = self.current.thread_id if self.current else ""
        if llm is None:
            q = question.lower()
            hits = [fn(report) for key, fn in _SECTIONS.items() if key in q]
            answer = "\n".join(hits) or report.analysis.summary
            self.write(answer + "\n")
        else:
            history = [
                {"question": t["question"], "answer": t["answer"]}
                for t in self.inv.conversation(thread)[-3:]
            ]
            prompt = render(
                "chat_followup",
                report=model_json(report.model_dump(mode="json", exclude={"usage"})),
                history=model_json(history),
                question=question,
            )
            parts: list[str] = []
            for chunk in llm.stream([SystemMessage(render("sre_system")), HumanMessage(prompt)]):
                if chunk.content:
                    parts.append(str(chunk.content))
                    self.write(parts[-1])
                if chunk.usage_metadata:
                    report.usage.prompt_tokens += chunk.usage_metadata["input_tokens"]
                    report.usage.completion_tokens += chunk.usage_metadata["output_tokens"]
            self.write("\n")
            answer = "".join(parts).strip()
        self.inv.remember(thread, question, answer)

    def resume(self, thread_id: str) -> None:
        """Reopen an earlier investigation (its report, pending approval and conversation)."""
        self.current = self.inv.resume(thread_id)
        for t in self.inv.conversation(thread_id):
            self.write(f"> {t['question']}\n{t['answer']}\n")
        self._show(self.current)
