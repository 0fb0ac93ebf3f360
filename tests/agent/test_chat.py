"""The chat session: tool calls shown as they run, follow-up answers streamed token by token."""

from __future__ import annotations

from agent.chat import ChatSession
from agent.graph import memory_checkpointer
from agent.run import Investigator
from evals.scripted_openai import FakeOpenAI
from tests.agent.conftest import RecordingExecutor, llm_settings
from tools.toolbox.context import ToolContext


def test_chat_streams_follow_up_answers_and_approves(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    chunks: list[str] = []
    script = [
        {"tool_calls": [{"name": "query_traces", "arguments": {"errors_only": True}}]},
        {"content": "Suspect paymentservice."},
        {"content": "paymentservice is saturated."},
        {"content": "Restart paymentservice after approval; the dry run passed."},
    ]
    with FakeOpenAI(script) as llm:
        settings = case_ctx.settings.model_copy(update={"llm": llm_settings(llm.url)})
        inv = Investigator(case_ctx, settings=settings, checkpointer=memory_checkpointer())
        chat = ChatSession(inv, case_ctx.incident, chunks.append)
        assert chat.handle("why are payments failing?")
        assert chat.handle("what should we do?")
        assert chat.handle("/approve dry run first")
        assert not chat.handle("/quit")
        followup = llm.requests[3]
        # a new session (another process) reopens the investigation with its conversation
        later: list[str] = []
        again = ChatSession(
            Investigator(case_ctx, settings=settings, checkpointer=inv.checkpointer),
            case_ctx.incident,
            later.append,
        )
        again.resume(chat.current.thread_id)
    assert (
        "> what should we do?\nRestart paymentservice after approval; the dry run passed."
        in "".join(later)
    )
    out = "".join(chunks)
    assert "→ query_traces(errors_only=True)" in out and "→ localize_root_cause(" in out
    assert "waits for approval" in out
    assert followup["stream"] is True
    streamed = [
        c for c in chunks if c.strip() in {"Restart", "paymentservice", "after", "approval;"}
    ]
    assert len(streamed) >= 3, "the answer arrived in one piece, not streamed"
    assert recorder.executed() == []  # chat approves a dry run unless started with --execute
    assert "Status: dry-run-ok" in out
