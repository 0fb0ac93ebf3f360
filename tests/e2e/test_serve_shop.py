"""A user's live path: OTel SDK shop -> ``tamo serve`` -> ``tamo diagnose`` and MCP, while spans
keep arriving.

The shop (evals/otel_shop.py) sends 15 minutes of traffic through the SDK's own OTLP/HTTP
exporter; in the last 5 minutes ``payment`` is 8x slower and fails 30 % of its requests. Both
fronts must name payment, report its error rate and latency change within 10 % of what was sent,
and give P1 or P2, while live traffic keeps coming; afterwards the store holds exactly what was
sent, and SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastmcp import Client

from evals.otel_shop import Shop, ShopFault
from evals.serve_process import ServeProcess, tamo

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

MIN = 60 * 10**9


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9))


def _within_10pct(got: float, sent: float) -> bool:
    return abs(got - sent) <= 0.1 * sent


def test_diagnose_while_spans_keep_arriving(tmp_path: Path) -> None:
    with ServeProcess(tmp_path) as server:
        now = (time.time_ns() // 10**9) * 10**9
        shop = Shop(f"{server.url}/v1/traces", fault=ShopFault(start_ns=now - 5 * MIN))
        shop.history(now - 15 * MIN, now, rate_per_s=6)
        assert shop.flush()
        halt = threading.Event()
        live = shop.live(rate_per_s=20, halt=halt)
        try:
            window = ["--start", _iso(now - 5 * MIN), "--end", _iso(now)]
            res = tamo(tmp_path, "diagnose", *window, "--format", "json", "--no-llm")
            assert res.returncode == 0, res.stderr
            report = json.loads(res.stdout)
            assert report["analysis"]["root_cause"] == "payment"
            assert report["priority"]["level"] in ("P1", "P2")
            pay = next(s for s in report["impact"]["services"] if s["service"] == "payment")
            sent_failure = shop.payment_failures / shop.payment_requests  # as drawn, ~30 %
            assert _within_10pct(pay["error_rate"], sent_failure), (pay, sent_failure)
            assert _within_10pct(pay["latency_factor"], 8.0), pay
            assert report["impact"]["baseline"] == "the 5 min before the window"
            assert report["impact"]["entry_points"] == ["frontend"]

            async def mcp() -> dict[str, object]:
                async with Client(f"{server.url}/mcp") as c:
                    out = await c.call_tool(
                        "diagnose_incident",
                        {"start": _iso(now - 5 * MIN) + "Z", "end": _iso(now) + "Z"},
                    )
                    return dict(out.structured_content or {})

            got = asyncio.run(mcp())
            assert got["root_cause"] == "payment" and str(got["priority"])[:2] in ("P1", "P2")
            assert any(line.startswith("payment: errors") for line in got["impact"])
        finally:
            halt.set()
            live.join(10)
        assert shop.flush()
        counts = httpx.post(f"{server.url}/api/store/counts", json={}).json()["value"]
        assert counts["spans"] == shop.spans_sent
        shop.shutdown()
        assert server.stop() == 0
        assert not server.server_file.exists()
        assert "tamo serve stopped" in "".join(server.output)
    # after the server: the file is a plain store again, readable by any command
    res = tamo(tmp_path, "query", "traces", "--start", _iso(now - MIN), "--end", _iso(now))
    assert res.returncode == 0, res.stderr
