"""The investigation as a LangGraph state machine, assembled in one readable place.

scope -> gather -> fuse -> localize -> classify -> match -> plan -> report
      -> [approve (interrupt) -> execute -> verify -> (rollback) -> final_report]

Why a graph with a checkpointer: each node is a small function over the typed state; the SQLite
checkpointer stores the state after every node, so a killed process resumes at the last finished
step — a repair that already ran is not run again (the executor also deduplicates by its
``task_id:seq`` key) — and the approval step can wait for a human for as long as it takes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent import nodes
from agent.nodes import AgentDeps
from agent.report_model import Analysis, Hypothesis, Impact, Priority, Remediation
from agent.state import STATE_TYPES, InvestigationState


def serializer() -> JsonPlusSerializer:
    """Checkpoint serializer that revives exactly the state's own types."""
    allowed = [*STATE_TYPES, Analysis, Impact, Priority, Remediation, Hypothesis]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


def memory_checkpointer() -> InMemorySaver:
    """For investigations that need not survive the process (MCP calls, tests, benchmarks)."""
    return InMemorySaver(serde=serializer())


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    return SqliteSaver(conn, serde=serializer())


def build_graph(checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:
    g = StateGraph(InvestigationState, context_schema=AgentDeps)
    g.add_node("scope", nodes.scope)
    g.add_node("gather", nodes.gather)
    g.add_node("fuse", nodes.fuse)
    g.add_node("localize", nodes.localize)
    g.add_node("classify", nodes.classify)
    g.add_node("match", nodes.match)
    g.add_node("plan", nodes.plan)
    g.add_node("report", nodes.report)
    g.add_node("approve", nodes.approve)
    g.add_node("execute", nodes.execute)
    g.add_node("verify", nodes.verify)
    g.add_node("rollback", nodes.rollback)
    g.add_node("final_report", nodes.report)

    g.add_edge(START, "scope")
    for a, b in [
        ("scope", "gather"),
        ("gather", "fuse"),
        ("fuse", "localize"),
        ("localize", "classify"),
        ("classify", "match"),
        ("match", "plan"),
        ("plan", "report"),
    ]:
        g.add_edge(a, b)
    g.add_conditional_edges("report", nodes.after_report, {"approve": "approve", "end": END})
    g.add_conditional_edges(
        "approve", nodes.after_approval, {"execute": "execute", "final": "final_report"}
    )
    g.add_edge("execute", "verify")
    g.add_conditional_edges(
        "verify", nodes.after_verify, {"rollback": "rollback", "final": "final_report"}
    )
    g.add_edge("rollback", "final_report")
    g.add_edge("final_report", END)
    return g.compile(checkpointer=checkpointer)
