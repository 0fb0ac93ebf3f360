"""Agent benchmarks: tokens and tool calls per diagnosis, offline diagnosis time, MCP latency.

What each figure means:

* ``prompt_tokens`` / ``tool_calls`` per diagnosis: the agent with an LLM, driven through the real
  ``ChatOpenAI`` client against the scripted OpenAI-compatible server of the tests (three evidence
  rounds, then the report), on Nezha cases. Tokens are tiktoken ``cl100k_base`` counts of what
  was actually sent. Target: <= 4,000 prompt tokens.
* ``diagnose_s``: offline (no LLM) investigation of a loaded dataset case to its report;
  ``case_end_to_end_s`` adds reading the case files. Target: median <= 2 s. CPU seconds are
  reported beside wall seconds because this machine is shared and wall time shows neighbours.
* ``mcp_read_only_call_ms``: p50 of read-only MCP tool calls (fastmcp Client, in memory) on the
  embedded store holding one case. Target: <= 50 ms.
* ``tool_listing_tokens``: the whole MCP tools/list (names, descriptions, schemas). Target < 4,000.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from evals.bench_store import machine
from tools.telemetry.model import LabelledCase

CASES_PER_DAY = 3
MCP_CALLS = 15


def _cases(datasets: Path) -> list[LabelledCase]:
    from tools.telemetry.datasets import get_adapter

    cases = get_adapter("nezha").cases(datasets / "nezha")
    by_day: dict[str, list[LabelledCase]] = {}
    for c in cases:
        by_day.setdefault(c.system, []).append(c)
    return [c for day in by_day.values() for c in day[:CASES_PER_DAY]]


def _row(metric: str, values: list[float], unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark": "agent",
        "metric": metric,
        "median": round(statistics.median(values), 4) if values else None,
        "unit": unit,
        "runs": len(values),
        "machine": machine(),
        **extra,
    }


def _offline(datasets: Path, cases: list[LabelledCase]) -> list[dict[str, Any]]:
    from agent.graph import memory_checkpointer
    from agent.run import Investigator
    from tools.core.settings import Settings
    from tools.telemetry.datasets import get_adapter
    from tools.toolbox.context import ToolContext

    adapter = get_adapter("nezha")
    root = datasets / "nezha"
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="tamo-bench-")))
    wall, cpu, e2e = [], [], []
    warm = True
    for case in cases:
        t0 = time.perf_counter()
        ct = adapter.load_case(root, case)
        t1, c1 = time.perf_counter(), time.process_time()
        ctx = ToolContext.from_case(ct, settings)
        Investigator(ctx, llm=False, checkpointer=memory_checkpointer()).diagnose(ctx.incident)
        t2, c2 = time.perf_counter(), time.process_time()
        if warm:  # the first run pays for lazy imports and torch initialisation
            warm = False
            continue
        wall.append(t2 - t1)
        cpu.append(c2 - c1)
        e2e.append(t2 - t0)
    return [
        _row("diagnose_s", wall, "s", target="<= 2"),
        _row("diagnose_cpu_s", cpu, "s CPU"),
        _row("case_end_to_end_s", e2e, "s", target="<= 2"),
    ]


def _with_llm(datasets: Path, cases: list[LabelledCase]) -> list[dict[str, Any]]:
    from pydantic import SecretStr

    from agent.graph import memory_checkpointer
    from agent.run import Investigator
    from evals.scripted_openai import FakeOpenAI
    from tools.core.settings import LLMSettings, Settings
    from tools.telemetry.datasets import get_adapter
    from tools.toolbox.context import ToolContext

    adapter = get_adapter("nezha")
    tokens, calls, llm_calls = [], [], []
    for case in cases:
        ctx = ToolContext.from_case(adapter.load_case(datasets / "nezha", case))
        script = [
            {"tool_calls": [{"name": "query_traces", "arguments": {"errors_only": True}}]},
            {
                "tool_calls": [
                    {"name": "search_logs", "arguments": {"min_severity": "WARN"}},
                    {"name": "query_traces", "arguments": {"min_duration_ms": 500}},
                ]
            },
            {"content": "Suspects identified."},
            {"content": "Root cause analysis written by the scripted model."},
        ]
        with FakeOpenAI(script) as server:
            settings = Settings(
                data_dir=Path(tempfile.mkdtemp(prefix="tamo-bench-")),
                llm=LLMSettings(api_key=SecretStr("sk-bench"), base_url=server.url, model="fake"),
            )
            r = Investigator(ctx, settings=settings, checkpointer=memory_checkpointer()).diagnose(
                ctx.incident
            )
        tokens.append(float(r.report.usage.prompt_tokens))
        calls.append(float(r.report.usage.tool_calls))
        llm_calls.append(float(r.report.usage.llm_calls))
    return [
        _row("prompt_tokens_per_diagnosis", tokens, "tokens", target="<= 4000", max=max(tokens)),
        _row("tool_calls_per_diagnosis", calls, "calls"),
        _row("llm_calls_per_diagnosis", llm_calls, "calls"),
    ]


async def _mcp(datasets: Path, case: LabelledCase) -> list[dict[str, Any]]:
    from fastmcp import Client

    from agent.tokens import count_json
    from mcp_server.server import build_server
    from tools.core.settings import Settings
    from tools.telemetry.datasets import get_adapter
    from tools.telemetry.store import TelemetryStore
    from tools.toolbox.context import ToolContext

    ct = get_adapter("nezha").load_case(datasets / "nezha", case)
    tmp = Path(tempfile.mkdtemp(prefix="tamo-bench-"))
    store = TelemetryStore(tmp / "t.duckdb")
    for kind in ("spans", "logs", "metrics"):
        store.insert(kind, getattr(ct, kind), f"bench-{kind}")
    settings = Settings(data_dir=tmp, store_path=tmp / "t.duckdb")
    ctx = ToolContext(store, store, store, settings=settings)
    w = {"start": case.window.start.isoformat(), "end": case.window.end.isoformat()}
    metric = store.metric_names()[0]
    calls = [
        ("query_traces", w),
        ("query_traces", {**w, "errors_only": True}),
        ("search_logs", w),
        ("query_promql", {**w, "query": metric}),
        ("list_strategies", {}),
    ]
    ms: list[float] = []
    async with Client(build_server(ctx)) as c:
        listing = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in await c.list_tools()
        ]
        for name, args in calls:  # warm-up
            await c.call_tool(name, args)
        for _ in range(MCP_CALLS):
            for name, args in calls:
                t0 = time.perf_counter()
                await c.call_tool(name, args)
                ms.append((time.perf_counter() - t0) * 1000)
    store.close()
    return [
        _row(
            "mcp_read_only_call_ms",
            ms,
            "ms p50",
            target="<= 50",
            p95=round(sorted(ms)[int(len(ms) * 0.95)], 2),
        ),
        _row("tool_listing_tokens", [float(count_json(listing))], "tokens", target="< 4000"),
    ]


def run(datasets: Path) -> list[dict[str, Any]]:
    cases = _cases(datasets)
    rows = _offline(datasets, cases)
    rows += _with_llm(datasets, cases[:2] + cases[-1:])
    rows += asyncio.run(_mcp(datasets, cases[-1]))
    for r in rows:
        r["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return rows
