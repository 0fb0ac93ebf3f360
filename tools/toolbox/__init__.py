"""The tool catalog: one typed definition of each tool, shared by the agent and the MCP server.

Importing this package registers every tool in :data:`tools.toolbox.spec.REGISTRY`.
"""

from __future__ import annotations

from tools.toolbox import learned, repair, telemetry, traces
from tools.toolbox.context import Links, ToolContext
from tools.toolbox.spec import REGISTRY, ToolSpec, tool, untrusted

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
    "untrusted",
]
