"""Human confirmation of a real repair through MCP elicitation.

Why two paths: on handshake-era connections the server asks with ``ctx.elicit`` (a
server-initiated request); on 2026-07-28 connections that back-channel is gone, so the tool
returns an ``InputRequiredResult`` carrying the same question and the client retries the call
with the user's answer. A client that supports neither cannot confirm: then the call must name
the human who approved (``approved_by``) or it is refused — the repair engine records who.
"""

from __future__ import annotations

from typing import Any

import mcp_types
from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.server.elicitation import AcceptedElicitation
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from tools.toolbox.context import ToolContext

CONFIRM_KEY = "confirm_repair"
_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Run this repair now?"},
        "name": {"type": "string", "title": "Your name (recorded in the audit log)"},
    },
    "required": ["approve", "name"],
}


class _Confirm(BaseModel):
    approve: bool
    name: str


def _message(ctx: ToolContext, args: dict[str, Any]) -> str:
    plan = ctx.recall(f"plan:{args.get('plan_id')}")
    what = "; ".join(f"{a.type} {a.target}" for a in plan.actions) if plan is not None else "?"
    return f"Execute repair plan {args.get('plan_id')} for real: {what}?"


def _modern(mcp_ctx: Context) -> bool:
    rc = mcp_ctx.request_context
    return rc is not None and rc.protocol_version in MODERN_PROTOCOL_VERSIONS


def _can_elicit(mcp_ctx: Context) -> bool:
    want = mcp_types.ClientCapabilities(elicitation=mcp_types.ElicitationCapability())
    return mcp_ctx.session.check_client_capability(want)


def _decide(content: dict[str, Any] | None) -> str:
    content = content or {}
    if not content.get("approve"):
        raise ToolError("repair not approved by the user; nothing was executed")
    return str(content.get("name") or "mcp-user")


async def confirm_repair(
    mcp_ctx: Context, ctx: ToolContext, args: dict[str, Any]
) -> str | mcp_types.InputRequiredResult:
    """The approver's name, or an ``InputRequiredResult`` asking the client; raises on refusal."""
    if not _can_elicit(mcp_ctx):
        if args.get("approved_by"):
            return str(args["approved_by"])
        raise ToolError(
            "execute_repair with dry_run=false needs confirmation: this client cannot show an "
            "elicitation, so pass approved_by=<the human who approved the plan>"
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
