"""A real OpenAI-compatible HTTP server with scripted replies and recorded requests.

Why a server and not a mock: the agent must be proven through the real ``ChatOpenAI`` client —
its HTTP, retries on 429/5xx and timeouts, tool-call parsing, streaming and usage accounting.
Each script step is one HTTP response to ``POST /v1/chat/completions``:

* ``{"tool_calls": [{"name": ..., "arguments": {...}}]}`` — the model calls tools
* ``{"content": "..."}`` — a plain answer
* ``{"status": 429}`` / ``{"status": 503}`` — an error response (with a short retry-after-ms)
* ``{"delay": 2.0, ...}`` — sleep first (to trigger the client's timeout), then reply
* a callable ``step(request_json) -> dict`` — decide from the request

When the script runs out the server answers ``{"content": "done"}``. Usage is computed with the
same tiktoken encoding the agent uses, so prompt-token budgets are measured, not assumed. It
lives in ``evals`` because the agent benchmark drives the same server as the tests (they import
it from here; ``evals`` never imports ``tests``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent.tokens import count, count_messages
from tools.telemetry.local_prometheus import free_loopback_port

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class FakeOpenAI:
    def __init__(self, script: list[Step] | None = None, model: str = "fake-sre-1") -> None:
        self.script: list[Step] = list(script or [])
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.responses: list[int] = []
        self.port = free_loopback_port()
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    # -- protocol ------------------------------------------------------------------------------

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        return count_messages(body.get("messages", []), body.get("tools"))

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            step = self.script.pop(0) if self.script else {"content": "done"}
        return step(body) if callable(step) else step

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        step = self._next(body)
        if step.get("delay"):
            await asyncio.sleep(step["delay"])
        if step.get("status"):
            self.responses.append(step["status"])
            return JSONResponse(
                {"error": {"message": "scripted failure", "type": "server_error"}},
                status_code=step["status"],
                headers={"retry-after-ms": "20"},
            )
        self.responses.append(200)
        message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:10]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
            }
            for c in step.get("tool_calls", [])
        ]
        if calls:
            message["tool_calls"] = calls
        usage = {
            "prompt_tokens": self.prompt_tokens(body),
            "completion_tokens": count(json.dumps(message)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        finish = "tool_calls" if calls else "stop"
        rid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            return StreamingResponse(
                self._sse(rid, message, finish, usage, body), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": rid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        )

    async def _sse(self, rid: str, message: dict, finish: str, usage: dict, body: dict):  # type: ignore[no-untyped-def]
        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
            data = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for word in (message.get("content") or "").split(" "):
            if word:
                yield chunk({"content": word + " "})
        for i, c in enumerate(message.get("tool_calls", [])):
            yield chunk({"tool_calls": [{"index": i, **c}]})
        yield chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(data)}\n\n"
        yield "data: [DONE]\n\n"
