"""The tool catalog: one typed definition of each tool, shared by the agent and the MCP server.

:data:`TOOLBOX` is the one list of the toolbox's tools: a tool exists for the agent and the MCP
server when it is listed here, never by the side effect of importing its module. The MCP server
adds the agent's ``diagnose_incident`` (which sits above the toolbox) to this list in its own
registration.
"""

from __future__ import annotations

from tools.toolbox import learned, repair, spec, telemetry, traces
from tools.toolbox.context import Links, ToolContext
from tools.toolbox.spec import ToolSpec, catalog, tool

TOOLBOX: dict[str, ToolSpec] = catalog(
    learned.fuse_modalities,
    learned.localize_root_cause,
    learned.classify_fault,
    repair.list_strategies,
    repair.plan_repair,
    repair.execute_repair,
    telemetry.query_traces,
    telemetry.search_logs,
    telemetry.query_promql,
    traces.analyze_traces,
    traces.match_fingerprint,
)


def warm(ctx: ToolContext) -> None:
    """Start the expensive, evidence-independent analyses of the incident window (fused tensor,
    trace clusters) in the background while evidence is gathered; the tools then find them
    cached."""
    scope = spec.WindowInput()
    ctx.background(lambda: learned.fused_for(ctx, scope))
    ctx.background(lambda: traces.analysis_for(ctx, scope))


__all__ = [
    "TOOLBOX",
    "Links",
    "ToolContext",
    "ToolSpec",
    "catalog",
    "learned",
    "repair",
    "telemetry",
    "tool",
    "traces",
    "warm",
]
