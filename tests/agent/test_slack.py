"""Slack handlers with Slack's payload shapes and a recording ``say`` (no network)."""

from __future__ import annotations

from typing import Any

from agent.graph import memory_checkpointer
from agent.run import Investigator
from agent.slack import SlackFront, parse_request
from tests.agent.conftest import SLACK_APPROVER, RecordingExecutor
from tools.telemetry.model import Incident
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import setup


class Recorder:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.acks = 0

    def say(self, **kw: Any) -> None:
        self.posts.append(kw)

    def ack(self, *a: Any, **kw: Any) -> None:
        self.acks += 1


def front(ctx: ToolContext, **kw: Any) -> SlackFront:
    inv = Investigator(ctx, llm=False, checkpointer=memory_checkpointer())
    incident = ctx.incident
    assert incident is not None

    def scope(text: str) -> Incident:
        return incident.model_copy(update={"question": text})

    return SlackFront(inv, scope=scope, **kw)


def buttons(post: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in post.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def click(action_id: str, value: str, user: str) -> dict[str, Any]:
    return {
        "actions": [{"action_id": action_id, "value": value}],
        "user": {"id": user},
        "message": {"ts": "1700000000.000100"},
    }


def test_parse_request_reads_window_and_services() -> None:
    inc = parse_request("<@U123> checkout is failing last 30m service=checkoutservice")
    assert inc.window.seconds == 1800 and inc.services == ["checkoutservice"]
    assert inc.question.startswith("checkout is failing")


def test_mention_replies_in_thread_with_report_and_buttons(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    rec = Recorder()
    f = front(case_ctx)
    f.on_mention({"text": "<@U1> payments failing", "ts": "1700000000.000100"}, rec.say)
    assert all(p["thread_ts"] == "1700000000.000100" for p in rec.posts)
    report = rec.posts[-1]
    assert report["blocks"][0]["type"] == "header" and "paymentservice" in report["text"]
    approve, deny = buttons(report)
    assert (approve["action_id"], deny["action_id"]) == ("approve_repair", "deny_repair")
    f.on_action(rec.ack, click("approve_repair", approve["value"], SLACK_APPROVER), rec.say)
    assert rec.acks == 1
    assert recorder.executed() == [("execute", "rollout_restart", "paymentservice")]
    assert f"Approved by <@{SLACK_APPROVER}>" in rec.posts[-2]["text"]
    assert not buttons(rec.posts[-1])
    (approval,) = setup(case_ctx).audit.entries(event="approval")
    assert (approval.executed_by, approval.status) == (f"slack:{SLACK_APPROVER}", "approved")


def test_deny_and_approver_allow_list(case_ctx: ToolContext, recorder: RecordingExecutor) -> None:
    rec = Recorder()
    f = front(case_ctx)
    f.on_command(rec.ack, {"text": "payments failing"}, rec.say)
    value = buttons(rec.posts[-1])[0]["value"]
    f.on_action(rec.ack, click("approve_repair", value, "U_INTERN"), rec.say)
    assert rec.posts[-1]["text"] == (
        "decision refused: slack:U_INTERN is not in TAMO_REPAIR_APPROVERS"
    )
    assert recorder.executed() == []
    anonymous = click("approve_repair", value, "")
    del anonymous["user"]
    f.on_action(rec.ack, anonymous, rec.say)
    assert "no authenticated identity" in rec.posts[-1]["text"] and recorder.executed() == []
    f.on_action(rec.ack, click("deny_repair", value, SLACK_APPROVER), rec.say)
    assert "Denied" in rec.posts[-2]["text"] and recorder.executed() == []
    decisions = [(e.executed_by, e.status) for e in setup(case_ctx).audit.entries()]
    assert decisions == [
        ("slack:U_INTERN", "refused"),
        ("unauthenticated", "refused"),
        (f"slack:{SLACK_APPROVER}", "denied"),
    ]


def test_register_attaches_listeners_to_a_bolt_app() -> None:
    from slack_bolt import App

    app = App(token="xoxb-test", signing_secret="test", token_verification_enabled=False)
    SlackFront(None, scope=parse_request).register(app)  # type: ignore[arg-type]
    assert len(app._listeners) == 4
