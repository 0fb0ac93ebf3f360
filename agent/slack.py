"""The Slack front: a mention or ``/tamo`` starts an investigation; buttons approve repairs.

Why handlers as plain methods: Slack delivers events over Socket Mode in production, but the
behaviour — parse the request, run the investigation, reply in the thread, turn a button click
into an approval decision — is tested by calling these methods with Slack's payloads and a
recording ``say``, without any network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.run import Investigation, Investigator
from agent.scope import parse_duration
from tools.repair.identity import slack_principal
from tools.telemetry.model import Incident, TimeWindow
from tools.telemetry.untrusted import slack

Say = Callable[..., Any]
_LAST = re.compile(r"\blast\s+(\d+[smhd])\b", re.IGNORECASE)
_SERVICE = re.compile(r"\bservice[=:]\s*([\w.-]+)", re.IGNORECASE)
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")


def parse_request(text: str, default_window: str = "15m") -> Incident:
    """``@tamo why is checkout failing? last 30m service=checkoutservice`` -> an incident."""
    text = _MENTION.sub("", text).strip()
    m = _LAST.search(text)
    end = datetime.now(UTC)
    start = end - parse_duration(m.group(1) if m else default_window)
    return Incident(
        window=TimeWindow(start=start, end=end),
        services=_SERVICE.findall(text),
        question=text or "investigate",
    )


class SlackFront:
    def __init__(
        self, investigator: Investigator, *, scope: Callable[[str], Incident] = parse_request
    ) -> None:
        self.inv = investigator
        self.scope = scope

    def _post(self, say: Say, result: Investigation, thread_ts: str | None) -> None:
        r = result.report
        if r is None:
            say(text=f"investigation {result.thread_id} has no report", thread_ts=thread_ts)
            return
        approval = result.thread_id if result.pending_approval else None
        say(text=r.title, blocks=r.to_slack_blocks(approval_id=approval), thread_ts=thread_ts)

    def investigate(self, text: str, say: Say, thread_ts: str | None) -> None:
        say(text="Investigating… (tools run first, report follows)", thread_ts=thread_ts)
        result = self.inv.diagnose(self.scope(text), request_repair=True, dry_run=False)
        self._post(say, result, thread_ts)

    # -- Bolt listeners -------------------------------------------------------------------------

    def on_mention(self, event: dict[str, Any], say: Say) -> None:
        self.investigate(event.get("text", ""), say, event.get("thread_ts") or event.get("ts"))

    def on_command(self, ack: Callable[..., Any], command: dict[str, Any], say: Say) -> None:
        ack()
        self.investigate(command.get("text", ""), say, None)

    def on_action(self, ack: Callable[..., Any], body: dict[str, Any], say: Say) -> None:
        """A button click: the decider is the Slack user id of the (Slack-signed) payload,
        checked against ``TAMO_REPAIR_APPROVERS`` (``slack:U…``) by the investigator."""
        ack()
        action = body["actions"][0]
        user = (body.get("user") or {}).get("id")
        thread_ts = (body.get("message") or {}).get("thread_ts") or (body.get("message") or {}).get(
            "ts"
        )
        approved = action["action_id"] == "approve_repair"
        result = self.inv.decide(action["value"], approved, slack_principal(user))
        if result.refused:
            say(text=slack(result.refused), thread_ts=thread_ts)
            return
        say(text=f"{'Approved' if approved else 'Denied'} by <@{user}>", thread_ts=thread_ts)
        self._post(say, result, thread_ts)

    def register(self, app: Any) -> None:
        """Attach the listeners to a ``slack_bolt.App``."""
        app.event("app_mention")(self.on_mention)
        app.command("/tamo")(self.on_command)
        app.action("approve_repair")(self.on_action)
        app.action("deny_repair")(self.on_action)
