"""``diagnose_incident(edges=...)``: a service graph declared for one investigation."""

from __future__ import annotations

import pytest

from agent.diagnose_tool import diagnose_incident
from tools.core.errors import InputError
from tools.toolbox.context import ToolContext


def test_declared_edges_reach_the_learned_tools(case_ctx: ToolContext) -> None:
    edges = [["frontend", "checkoutservice"], ["checkoutservice", "paymentservice"]]
    out = diagnose_incident(case_ctx, edges=edges)
    assert out.root_cause == "paymentservice"
    assert case_ctx.recall("topology").edges == [tuple(e) for e in edges]
    assert any(k.startswith("fused:") and ":2:" in k for k in case_ctx._cache)


def test_bad_edges_are_one_line_naming_the_entry(case_ctx: ToolContext) -> None:
    with pytest.raises(InputError, match=r"diagnose_incident.edges: edges\[0\]: .*calls itself"):
        diagnose_incident(case_ctx, edges=[["cart", "cart"]])
