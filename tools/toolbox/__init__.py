"""The tool catalog: one typed definition of each tool, shared by the agent and the MCP server.

Importing this package registers every tool in :data:`tools.toolbox.spec.REGISTRY`.
"""

from __future__ import annotations

from tools.toolbox import learned, repair, spec, telemetry, traces
from tools.toolbox.context import Links, ToolContext
from tools.toolbox.spec import REGISTRY, ToolSpec, tool


def warm(ctx: ToolContext) -> None:
    """Start the expensive, evidence-independent analyses of the incident window (fused tensor,
    trace clusters) in the background while evidence is gathered; the tools then find them
    cached."""
    scope = spec.WindowInput()
    ctx.background(lambda: learned.fused_for(ctx, scope))
    ctx.background(lambda: traces.analysis_for(ctx, scope))


__all__ = [
    "REGISTRY",
    "Links",
    "ToolContext",
    "ToolSpec",
    "learned",
    "repair",
    "telemetry",
    "tool",
    "traces",
    "warm",
]
