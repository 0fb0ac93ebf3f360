"""The HTTP behaviour every backend client shares, against a real HTTP server on loopback.

Also home of :class:`FakeBackend`, the tiny real server (``http.server`` on 127.0.0.1, a free
port) the Loki, Jaeger and Tempo tests use to serve responses shaped as their API docs show.
Retries, timeouts, 4xx/5xx and malformed JSON are exercised through ``PrometheusClient``, whose
envelope (``{"status": "success", "data": ...}``) is the one documented at
https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import free_port
from tools.core.errors import BackendError
from tools.core.settings import BackendSettings, Settings
from tools.telemetry.backends import sources_from_settings
from tools.telemetry.backends.jaeger import JaegerClient
from tools.telemetry.backends.loki import LokiClient
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.backends.tempo import TempoClient

Body = dict[str, Any] | list[Any] | str | bytes


@dataclass
class Reply:
    body: Body
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def arg(self, name: str) -> str:
        return self.query[name][0]


Handler = Callable[[Request], Reply]


class FakeBackend:
    """A real HTTP server: each path answers its scripted replies in order (the last repeats),
    or a handler computes the reply from the request. Every request is recorded."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.handlers: dict[str, Handler] = {}
        self.requests: list[Request] = []
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                req = Request(parts.path, parse_qs(parts.query), dict(self.headers.items()))
                fake.requests.append(req)
                reply = fake._reply(req)
                time.sleep(reply.delay_s)
                data = reply.body
                if isinstance(data, dict | list):
                    data = json.dumps(data)
                payload = data.encode() if isinstance(data, str) else data
                try:
                    self.send_response(reply.status)
                    ctype = reply.headers.get("Content-Type", "application/json")
                    self.send_header("Content-Type", ctype)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _reply(self, req: Request) -> Reply:
        if req.path in self.handlers:
            return self.handlers[req.path](req)
        script = self.scripts.get(req.path)
        if not script:
            return Reply({"error": f"no route {req.path}"}, status=404)
        return script.pop(0) if len(script) > 1 else script[0]

    def route(self, path: str, *replies: Reply | Body) -> None:
        self.scripts[path] = [r if isinstance(r, Reply) else Reply(r) for r in replies]

    def handle(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> FakeBackend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


def running_fake() -> Iterator[FakeBackend]:
    """Body of each test module's ``fake`` fixture: a started server, stopped afterwards."""
    backend = FakeBackend().start()
    yield backend
    backend.stop()


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    yield from running_fake()


LABELS_OK = {"status": "success", "data": ["__name__", "job"]}


def _client(fake: FakeBackend, **kw: Any) -> PrometheusClient:
    return PrometheusClient(fake.url, backoff_s=0.01, **kw)


def test_429_then_200_is_retried_honouring_retry_after(fake: FakeBackend) -> None:
    fake.route(
        "/api/v1/labels",
        Reply({"status": "error", "error": "slow down"}, 429, {"Retry-After": "0.2"}),
        LABELS_OK,
    )
    started = time.monotonic()
    assert _client(fake).labels() == ["__name__", "job"]
    assert len(fake.hits("/api/v1/labels")) == 2
    assert time.monotonic() - started >= 0.2


def test_5xx_exhaustion_names_url_status_and_attempts(fake: FakeBackend) -> None:
    fake.route("/api/v1/labels", Reply("upstream connect error\nor disconnect", 503))
    with pytest.raises(BackendError) as exc:
        _client(fake, retries=2).labels()
    assert len(fake.hits("/api/v1/labels")) == 3
    err = exc.value
    assert err.status == 503 and err.url == f"{fake.url}/api/v1/labels"
    assert str(err) == (
        f"{fake.url}/api/v1/labels (HTTP 503): prometheus failed after 3 attempts: "
        "upstream connect error or disconnect"
    )


def test_4xx_is_not_retried_and_carries_the_backends_message(fake: FakeBackend) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "("'}
    fake.route("/api/v1/query", Reply(body, 400))
    with pytest.raises(BackendError) as exc:
        _client(fake).query("sum(", 1_700_000_000)
    assert len(fake.hits("/api/v1/query")) == 1
    assert exc.value.status == 400
    assert "bad_data: parse error" in str(exc.value)
    assert "query=sum%28" in exc.value.url and "time=1700000000.000" in exc.value.url


def test_timeout_is_retried_then_reported(fake: FakeBackend) -> None:
    fake.route("/api/v1/labels", Reply(LABELS_OK, delay_s=1.0))
    with pytest.raises(BackendError, match=r"timed out after 0.2 s \(2 attempts\)") as exc:
        _client(fake, timeout_s=0.2, retries=1).labels()
    assert exc.value.status is None and exc.value.url == f"{fake.url}/api/v1/labels"
    assert len(fake.hits("/api/v1/labels")) == 2


def test_malformed_and_misshaped_json_are_backend_errors(fake: FakeBackend) -> None:
    fake.route("/api/v1/labels", Reply("<html>502 Bad Gateway</html>", 200))
    with pytest.raises(BackendError, match="malformed JSON: '<html>502 Bad Gateway</html>'") as e:
        _client(fake).labels()
    assert e.value.status == 200 and len(fake.hits("/api/v1/labels")) == 1
    fake.route("/api/v1/query", {"status": "success", "data": {"resultType": "matrix"}})
    with pytest.raises(BackendError, match="unexpected shape") as e:
        _client(fake).query("up")
    assert "\n" not in str(e.value)


def test_unreachable_backend(fake: FakeBackend) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=r"unreachable after 2 attempts: ConnectError") as exc:
        PrometheusClient(url, retries=1, backoff_s=0.01).labels()
    assert exc.value.url == f"{url}/api/v1/labels"


def test_bearer_token_is_sent_but_never_logged_or_shown(
    fake: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-token-value"
    fake.route("/api/v1/labels", Reply({"status": "error", "error": "denied"}, 403))
    client = _client(fake, token=secret)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as exc:
        client.labels()
    assert fake.requests[0].headers["Authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text and secret not in str(exc.value)
    assert secret not in repr(client)
    assert "/api/v1/labels -> 403" in caplog.text


def test_basic_auth_from_settings_and_url_userinfo_redacted(fake: FakeBackend) -> None:
    settings = BackendSettings(backend_username="sre", backend_password="hunter2", http_retries=0)
    fake.route("/api/v1/labels", LABELS_OK)
    client = PrometheusClient(fake.url, **PrometheusClient.options_from_settings(settings))
    assert client.labels() == ["__name__", "job"]
    assert fake.requests[0].headers["Authorization"] == "Basic c3JlOmh1bnRlcjI="
    fake.route("/api/v1/labels", Reply("no", 500))
    inline = fake.url.replace("http://", "http://sre:hunter2@")
    with pytest.raises(BackendError) as exc:
        PrometheusClient(inline, retries=0).labels()
    assert "hunter2" not in str(exc.value) and exc.value.url == f"{fake.url}/api/v1/labels"


async def test_async_api_and_sync_facade_from_a_worker_thread_inside_a_running_loop(
    fake: FakeBackend,
) -> None:
    fake.route("/api/v1/labels", LABELS_OK)
    client = _client(fake)
    assert await client.alabels() == ["__name__", "job"]  # this test's own loop
    # A tool called from a worker thread while this loop runs (what the MCP server does).
    assert await asyncio.to_thread(client.labels) == ["__name__", "job"]
    results = await asyncio.gather(*(asyncio.to_thread(client.labels) for _ in range(4)))
    assert all(r == ["__name__", "job"] for r in results)
    await client.aclose()
    client.close()


def test_sources_from_settings_uses_backends_and_falls_back_to_the_store(tmp_path) -> None:
    from tools.telemetry.store import TelemetryStore

    store = TelemetryStore(None)
    settings = Settings(
        data_dir=tmp_path,
        backends=BackendSettings(
            prometheus_url="http://127.0.0.1:9090", loki_url="http://127.0.0.1:3100"
        ),
    )
    traces, logs, metrics = sources_from_settings(settings, store)
    assert traces is store
    assert isinstance(logs, LokiClient) and isinstance(metrics, PrometheusClient)
    with_jaeger = Settings(
        data_dir=tmp_path, backends=BackendSettings(jaeger_url="http://127.0.0.1:16686")
    )
    traces, logs, metrics = sources_from_settings(with_jaeger, store)
    assert isinstance(traces, JaegerClient) and logs is store and metrics is store
    with_tempo = Settings(
        data_dir=tmp_path,
        backends=BackendSettings(tempo_url="http://127.0.0.1:3200", backend_token="t0k"),
    )
    traces, _, _ = sources_from_settings(with_tempo, store)
    assert isinstance(traces, TempoClient) and repr(traces) == (
        "TempoClient('http://127.0.0.1:3200', auth=bearer)"
    )
    offline = sources_from_settings(Settings(data_dir=tmp_path))
    assert all(isinstance(s, TelemetryStore) for s in offline)
    assert offline[0].path == tmp_path / "telemetry.duckdb"
    offline[0].close()
    store.close()
