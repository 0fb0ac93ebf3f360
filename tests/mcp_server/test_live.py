"""Live mode's composed app: OTLP, the store API and MCP on one port, with one auth rule."""

from __future__ import annotations

import httpx
import pytest

from mcp_server.live import Retention, build_live_server
from tools.core.errors import ConfigError
from tools.telemetry.store import TelemetryStore
from tools.toolbox.context import ToolContext

TOKEN = "s3cret-token-for-tests"
SPAN = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "x",
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": "1700000000100000000",
                        }
                    ]
                }
            ],
        }
    ]
}


def _live(token: str | None, host: str = "127.0.0.1") -> tuple[TelemetryStore, object]:
    store = TelemetryStore(None)
    ctx = ToolContext(store, store, store)
    return store, build_live_server(
        store, ctx, host=host, port=0, token=token, retention=Retention(None)
    )


async def test_one_app_serves_otlp_the_api_and_mcp_with_the_token_where_it_is_needed() -> None:
    store, live = _live(TOKEN)
    app = live.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        assert (await c.post("/v1/traces", json=SPAN)).status_code == 200  # OTLP: no token
        assert store.counts()["spans"] == 1
        bad = await c.post("/api/store/counts", json={})
        assert bad.status_code == 401 and "token" in bad.json()["error"]
        ok = await c.post(
            "/api/store/counts", json={}, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert ok.json()["value"]["spans"] == 1
        assert (await c.get("/api/health")).json()["service"] == "tamo serve"
    live.close()  # type: ignore[attr-defined]


def test_off_loopback_without_a_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="bearer token"):
        _live(None, host="0.0.0.0")
