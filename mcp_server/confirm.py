"""Human confirmation of a real repair through MCP elicitation.

Why two paths: on handshake-era connections the server asks with ``ctx.elicit`` (a
server-initiated request); on 2026-07-28 connections that back-channel is gone, so the tool
returns an ``InputRequiredResult`` carrying the same question and the client retries the call
with the user's answer. A client that supports neither cannot confirm, and the call is refused:
an argument naming an approver would be something the model writes. Who approved is never asked
either — it is the request's authenticated principal (see ``server._principal``).
"""

from __future__ import annotations

from typing import Any

import mcp_types
from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.server.elicitation import AcceptedElicitation
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from tools.telemetry.untrusted import quote
from tools.toolbox.context import ToolContext

CONFIRM_KEY = "confirm_repair"
_SCHEMA = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Run this repair now?"}},
    "required": ["approve"],
}


class _Confirm(BaseModel):
    approve: bool


def _message(ctx: ToolContext, args: dict[str, Any]) -> str:
    plan = ctx.recall(f"plan:{args.get('plan_id')}")
    what = (
        "; ".join(f"{a.type} {quote(a.target, 120)}" for a in plan.actions)
        if plan is not None
        else "?"
    )
    return f"Execute repair plan {args.get('plan_id')} for real: {what}?"


def _modern(mcp_ctx: Context) -> bool:
    rc = mcp_ctx.request_context
    return rc is not None and rc.protocol_version in MODERN_PROTOCOL_VERSIONS


def _can_elicit(mcp_ctx: Context) -> bool:
    want = mcp_types.ClientCapabilities(elicitation=mcp_types.ElicitationCapability())
    return mcp_ctx.session.check_client_capability(want)


def _decide(content: dict[str, Any] | None) -> None:
    if not (content or {}).get("approve"):
        raise ToolError("repair not approved by the user; nothing was executed")


async def confirm_repair(
    mcp_ctx: Context, ctx: ToolContext, args: dict[str, Any]
) -> mcp_types.InputRequiredResult | None:
    """None once the user confirmed, an ``InputRequiredResult`` asking the client; raises on
    refusal or when the client cannot ask its user at all."""
    if not _can_elicit(mcp_ctx):
        raise ToolError(
            "execute_repair with dry_run=false needs the user's confirmation and this client "
            "cannot show an elicitation; approve with `tamo repair execute` instead"
        )
    if _modern(mcp_ctx):
        answers = mcp_ctx.input_responses or {}
        answer = answers.get(CONFIRM_KEY)
        if answer is None:
            request = mcp_types.ElicitRequest(
                params=mcp_types.ElicitRequestFormParams(
                    message=_message(ctx, args), requested_schema=_SCHEMA
                )
            )
            return mcp_types.InputRequiredResult(input_requests={CONFIRM_KEY: request})
        if getattr(answer, "action", None) != "accept":
            raise ToolError("repair not approved by the user; nothing was executed")
        return _decide(answer.content)
    result = await mcp_ctx.elicit(_message(ctx, args), response_type=_Confirm)
    if not isinstance(result, AcceptedElicitation):
        raise ToolError("repair not approved by the user; nothing was executed")
    return _decide(result.data.model_dump())
