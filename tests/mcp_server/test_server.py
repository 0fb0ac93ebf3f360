"""The MCP server through a real fastmcp Client: in memory, over stdio and over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError

from agent.tokens import count_json
from mcp_server.auth import http_auth, parse_tokens
from mcp_server.server import build_server, warm_up
from tests.agent.conftest import APPROVERS, MCP_APPROVER, TOOLBOX_TOOLS, RecordingExecutor
from tests.agent.synthetic import ABNORMAL, quoted_everywhere
from tests.conftest import REPO, free_port
from tools.core.errors import ConfigError
from tools.toolbox.context import WINDOW_KEYS, ToolContext
from tools.toolbox.repair import setup

TOOLS = TOOLBOX_TOOLS | {"diagnose_incident"}
WINDOW = {"start": ABNORMAL.start.isoformat(), "end": ABNORMAL.end.isoformat()}
TOKEN = "s3cret-token-for-tests-0123456789"
pytestmark = pytest.mark.timeout(120)


def arguments(name: str) -> dict[str, Any]:
    """Valid arguments for every tool (the window of the synthetic incident)."""
    if name == "query_promql":
        return {**WINDOW, "query": "container_cpu_usage"}
    if name == "plan_repair":
        return {"service": "paymentservice", "fault_type": "cpu_contention"}
    if name == "list_strategies":
        return {}
    return dict(WINDOW)


def text(result: Any) -> dict[str, Any]:
    return json.loads(result.content[0].text)


async def test_listing_is_small_annotated_and_complete(case_ctx: ToolContext) -> None:
    async with Client(build_server(case_ctx)) as c:
        tools = await c.list_tools()
    assert {t.name for t in tools} == TOOLS
    listing = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    assert count_json(listing) < 4000
    by = {t.name: t.annotations for t in tools}
    assert by["execute_repair"].destructive_hint and not by["execute_repair"].read_only_hint
    assert all(by[n].read_only_hint for n in TOOLS - {"execute_repair"})
    assert by["execute_repair"].idempotent_hint


async def test_warm_up_loads_models_and_graph_but_nothing_of_the_window(
    case_ctx: ToolContext,
) -> None:
    server = build_server(case_ctx)
    warm_up(case_ctx).join(timeout=60)
    assert case_ctx.recall("models") is not None and case_ctx.recall("investigator") is not None
    assert not [k for k in case_ctx._cache if k.startswith(WINDOW_KEYS)]
    async with Client(server) as c:
        diag = text(await c.call_tool("diagnose_incident", {}))
    assert diag["root_cause"] == "paymentservice"


async def test_every_tool_answers_compactly(case_ctx: ToolContext) -> None:
    async with Client(build_server(case_ctx)) as c:
        for name in sorted(TOOLS - {"execute_repair"}):
            out = text(await c.call_tool(name, arguments(name)))
            assert count_json(out) < 800, name
        plan = text(await c.call_tool("plan_repair", arguments("plan_repair")))
        dry = text(await c.call_tool("execute_repair", {"plan_id": plan["plan_id"]}))
        assert dry["status"] == "dry-run-ok"
        diag = text(await c.call_tool("diagnose_incident", {}))
        assert diag["root_cause"] == "paymentservice"
        recent = json.loads((await c.read_resource("tamo://incidents/recent"))[0].text)
        assert recent[0]["root_cause"] == "paymentservice"
        assert recent[0]["id"] == diag["investigation_id"]
        full = (await c.read_resource(f"tamo://incidents/{diag['investigation_id']}"))[0].text
        assert "## Remediation" in full and "## Not checked" in full
        library = json.loads((await c.read_resource("tamo://strategies"))[0].text)
        assert library["strategies"][0]["id"] == "payment_restart"
        prompt = await c.get_prompt("investigate_alert", {"alert": "checkout errors"})
        assert "diagnose_incident" in prompt.messages[0].content.text


def elicit(answer: bool, asked: list[str]) -> Any:
    async def handler(message: str, response_type: Any, params: Any, context: Any) -> dict:
        asked.append(message)
        return {"approve": answer}

    return handler


async def test_real_repair_asks_the_user_through_elicitation(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    """Over stdio the identity is the server's OS account; the user still confirms each run."""
    asked: list[str] = []
    server = build_server(case_ctx, local_principal=APPROVERS[0])
    async with Client(server, elicitation_handler=elicit(False, asked)) as c:
        plan = text(await c.call_tool("plan_repair", arguments("plan_repair")))
        with pytest.raises(ToolError, match="not approved"):
            await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
    assert recorder.executed() == [] and 'rollout_restart "paymentservice"' in asked[0]
    async with Client(server, elicitation_handler=elicit(True, asked)) as c:
        out = text(
            await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
        )
    assert out["status"] == "success" and recorder.executed()
    approvals = setup(case_ctx).audit.entries(event="approval")
    assert [(e.executed_by, e.status) for e in approvals] == [(APPROVERS[0], "approved")]


async def test_a_real_repair_without_an_identity_or_by_an_outsider_is_refused(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    asked: list[str] = []
    anonymous = build_server(case_ctx)  # loopback HTTP without a token: nobody is known
    async with Client(anonymous, elicitation_handler=elicit(True, asked)) as c:
        plan = text(await c.call_tool("plan_repair", arguments("plan_repair")))
        with pytest.raises(ToolError, match="needs an authenticated identity"):
            await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
    outsider = build_server(case_ctx, local_principal="os:mallory")
    async with Client(outsider, elicitation_handler=elicit(True, asked)) as c:
        with pytest.raises(ToolError, match="os:mallory is not in TAMO_REPAIR_APPROVERS"):
            await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
    assert asked == [] and recorder.executed() == []  # nobody was even asked
    approvals = setup(case_ctx).audit.entries(event="approval")
    assert [(e.executed_by, e.status) for e in approvals] == [
        ("unauthenticated", "refused"),
        ("os:mallory", "refused"),
    ]


async def test_without_elicitation_a_real_repair_is_refused_whatever_the_arguments(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    async with Client(build_server(case_ctx, local_principal=APPROVERS[0])) as c:
        plan = text(await c.call_tool("plan_repair", arguments("plan_repair")))
        with pytest.raises(ToolError, match="cannot show an elicitation"):
            await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
        with pytest.raises(ToolError):  # the model cannot name an approver: no such parameter
            await c.call_tool(
                "execute_repair",
                {"plan_id": plan["plan_id"], "dry_run": False, "approved_by": APPROVERS[0]},
            )
        assert recorder.executed() == []


async def test_injected_telemetry_stays_a_json_value_over_mcp(case_ctx: ToolContext) -> None:
    async with Client(build_server(case_ctx)) as c:
        raw = (
            (await c.call_tool("search_logs", {**WINDOW, "min_severity": "ERROR"})).content[0].text
        )
    assert quoted_everywhere(raw)
    assert json.loads(raw)["flagged"][0]["why"] == ["instruction-like", "role marker"]


class HttpServer:
    """``build_server(ctx, auth)`` served over streamable HTTP by uvicorn on a free port."""

    def __init__(self, ctx: ToolContext, tokens: dict[str, str]) -> None:
        import threading

        import uvicorn

        app = build_server(ctx, http_auth("127.0.0.1", None, tokens)).http_app()
        self.url = f"http://127.0.0.1:{free_port()}/mcp"
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "MCP HTTP server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


async def test_over_http_the_bearer_tokens_principal_approves(
    case_ctx: ToolContext, recorder: RecordingExecutor
) -> None:
    tokens = {MCP_APPROVER: "alice-token-0123456789", "eve": "eve-token-0123456789ab"}
    asked: list[str] = []
    with HttpServer(case_ctx, tokens) as srv:
        async with Client(
            srv.url, auth=tokens["eve"], elicitation_handler=elicit(True, asked), timeout=30
        ) as c:
            plan = text(await c.call_tool("plan_repair", arguments("plan_repair")))
            with pytest.raises(ToolError, match="mcp:eve is not in TAMO_REPAIR_APPROVERS"):
                await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
        assert recorder.executed() == []
        async with Client(
            srv.url, auth=tokens[MCP_APPROVER], elicitation_handler=elicit(True, asked), timeout=30
        ) as c:
            out = text(
                await c.call_tool("execute_repair", {"plan_id": plan["plan_id"], "dry_run": False})
            )
    assert out["status"] == "success" and len(recorder.executed()) == 1
    approvals = setup(case_ctx).audit.entries(event="approval")
    assert [(e.executed_by, e.status) for e in approvals] == [
        ("mcp:eve", "refused"),
        (f"mcp:{MCP_APPROVER}", "approved"),
    ]


@pytest.mark.slow
async def test_stdio_subprocess(store_env: dict[str, str]) -> None:
    transport = StdioTransport(
        command=sys.executable, args=["-m", "tamo.main", "mcp"], env=store_env, cwd=str(REPO)
    )
    async with Client(transport, timeout=60) as c:
        assert {t.name for t in await c.list_tools()} == TOOLS
        out = {
            n: text(await c.call_tool(n, arguments(n))) for n in sorted(TOOLS - {"execute_repair"})
        }
        dry = await c.call_tool(
            "execute_repair", {"plan_id": out["plan_repair"]["plan_id"] or "none"}
        )
    assert out["query_traces"]["spans"] == 360 and out["query_traces"]["error_rate"] > 0.2
    assert out["localize_root_cause"]["ranking"][0]["entity"] == "paymentservice"
    assert out["diagnose_incident"]["root_cause"] == "paymentservice"
    assert dry.content[0].text


@pytest.fixture
def http_server(store_env: dict[str, str]):
    port = free_port()
    cmd = [sys.executable, "-m", "tamo.main", "mcp", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        env={**store_env, "TAMO_MCP_TOKEN": TOKEN},
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.2)
    else:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"tamo mcp --transport http did not accept connections in 60 s: {err[-500:]!r}")
    yield url, proc
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert TOKEN.encode() not in err, "the bearer token was logged"


@pytest.mark.slow
async def test_http_requires_the_token_and_serves_concurrent_calls(http_server) -> None:
    url, _ = http_server
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    with pytest.raises(Exception):  # noqa: B017 — the client surfaces the 401 its own way
        async with Client(url, auth="wrong-token-wrong-token", timeout=20) as c:
            await c.list_tools()
    async with Client(url, auth=TOKEN, timeout=60) as c:
        assert {t.name for t in await c.list_tools()} == TOOLS
        calls = [c.call_tool("query_traces", {**WINDOW, "top_k": k}) for k in range(1, 7)]
        calls += [
            c.call_tool(n, arguments(n)) for n in ("search_logs", "query_promql", "list_strategies")
        ]
        results = await asyncio.gather(*calls)
    assert [len(text(r)["by_service"]) for r in results[:6]] == [1, 2, 3, 3, 3, 3]
    assert text(results[6])["lines"] == 91 and text(results[7])["series"] == 3


async def test_http_auth_rules() -> None:
    with pytest.raises(ConfigError, match="without a bearer token"):
        http_auth("0.0.0.0", None)
    assert http_auth("127.0.0.1", None) is None and http_auth("::1", None) is None
    verifier = http_auth("0.0.0.0", TOKEN)
    assert TOKEN not in repr(verifier)
    assert (await verifier.verify_token(TOKEN)).client_id == "tamo-mcp-client"
    assert (await verifier.verify_token(TOKEN[:-1] + "x")) is None
    with pytest.raises(ConfigError, match="at least 16"):
        http_auth("127.0.0.1", "short")
    tokens = parse_tokens("alice=alice-token-0123456789,bob=bob-token-0123456789ab")
    two = http_auth("0.0.0.0", None, tokens)
    assert (await two.verify_token("bob-token-0123456789ab")).client_id == "bob"
    with pytest.raises(ConfigError, match="principal=token"):
        parse_tokens("just-a-token")
