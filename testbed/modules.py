"""The behaviour of each module, and the Starlette app of one module process.

Why explicit handlers: each fault of ``catalog.FAULTS`` must change the behaviour of exactly the
module it targets, the way the seed describes it (a wedged queue, a bad model version, an
unreachable webhook, a corrupt state head, a dropped span, a lost context); reading one short
function per module shows where and how. Everything common (spans, metrics, logs, error bodies)
is in ``runtime.work_route``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from opentelemetry.trace import Span
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testbed.catalog import (
    CALLBACK_FAILED,
    CALLBACK_RETRY_EXHAUSTED,
    DUPLICATE_DELIVERY,
    DUPLICATE_DISPATCH,
    MODEL_TIMEOUT,
    MODELS,
    REDISPATCH_LIMIT,
    SNAPSHOT_NOT_FOUND,
    STATE_WRITE_ERROR,
    STEPS,
    WEBHOOK_UNREACHABLE,
)
from testbed.config import RuntimeConfig, StaticConfig
from testbed.runtime import (
    CallTimeout,
    Handler,
    ModuleFailure,
    ModuleRuntime,
    current_trace_id,
    work_route,
)

LLM_ATTEMPTS = 2
CALLBACK_ATTEMPTS = 3
STATE_WRITE_ATTEMPTS = 2


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text`` (jitter without a random generator)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") / 2**32


# --- AgentRouter: dispatch, steps, snapshots ------------------------------------------------


async def _write_state(rt: ModuleRuntime, span: Span, task_id: str, step: int, state: dict) -> None:
    m = rt.metrics
    for attempt in range(1, STATE_WRITE_ATTEMPTS + 1):
        if rt.fault("state-write-error") is None:
            key = rt.store.write_snapshot(task_id, step, state)
            span.add_event("state_write", {"key": key, "ok": True})
            return
        m.label(m.state_write_errors).inc()
        span.add_event("state_write", {"step": step, "ok": False, "attempt": attempt})
        rt.log(
            logging.WARNING,
            f"state write failed for agent_state_snapshot:{task_id}:{step}: head version corrupt",
            task_id=task_id,
            error_code=STATE_WRITE_ERROR,
            attempt=attempt,
        )
        if attempt < STATE_WRITE_ATTEMPTS:
            m.label(m.retries, reason=STATE_WRITE_ERROR).inc()
            await asyncio.sleep(0.01)
    raise ModuleFailure(STATE_WRITE_ERROR, f"cannot write state of {task_id} step {step}", 500)


async def agent_router(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """Run a task's steps 1-3, snapshotting after each; ``from_step`` resumes a re-dispatch."""
    m = rt.metrics
    task_id = str(body.get("task_id") or f"task-{os.urandom(6).hex()}")
    seq_no = int(body.get("seq_no", 0))
    from_step = int(body.get("from_step", 0))
    origin = "recovered" if seq_no > 0 else "user"
    span.set_attributes(
        {"task_id": task_id, "seq_no": seq_no, "dispatch_origin": origin, "recovery": seq_no > 0}
    )
    if body.get("recovery_strategy"):  # the seed's trace flag naming the repair (ch. 7)
        span.set_attribute("recovery_strategy", str(body["recovery_strategy"]))
    dispatches = rt.store.claim_dispatch(task_id, seq_no, origin)
    if dispatches is None:
        raise ModuleFailure(
            DUPLICATE_DISPATCH, f"{task_id} seq_no {seq_no} already dispatched", 409
        )
    if dispatches > rt.static.max_dispatches:
        raise ModuleFailure(
            REDISPATCH_LIMIT,
            f"{task_id} dispatched {dispatches} times (max {rt.static.max_dispatches})",
            429,
        )
    m.label(m.dispatch, dispatch_origin=origin).inc()
    if from_step > 0:
        state = rt.store.read_snapshot(task_id, from_step - 1)
        if state is None:
            raise ModuleFailure(SNAPSHOT_NOT_FOUND, f"no snapshot {task_id}:{from_step - 1}", 404)
        state["parent_trace_id"] = state.get("trace_id", "")
        span.set_attribute("parent_trace_id", state["parent_trace_id"])
    else:
        state = {"task_id": task_id, "prompt": str(body.get("prompt", ""))}
    state.update(trace_id=current_trace_id(), seq_no=seq_no, dispatch_origin=origin)
    rt.log(
        logging.INFO,
        f"dispatch {task_id} from step {from_step}",
        task_id=task_id,
        dispatch_origin=origin,
        seq_no=seq_no,
    )
    if from_step == 0:
        await _write_state(rt, span, task_id, 0, state)
    for step in range(max(from_step, 1), len(STEPS)):
        if step == 1:
            pre = await rt.call(
                "TaskPreprocessor", "/process", {"task_id": task_id, "prompt": state["prompt"]}
            )
            state.update(context=pre["context"], vectorized_input=pre["vectorized_input"])
        elif step == 2:
            out = await rt.call(
                "ModelExecutor", "/execute", {"task_id": task_id, "context": state["context"]}
            )
            state.update(answer=out["answer"], model_version=out["model_version"])
        elif rt.config.skipped("CallbackSender"):
            rt.store.park_callback(task_id, {"answer": state["answer"]})
            m.label(m.skipped, skipped="CallbackSender").inc()
            state["callback"] = "deferred"
        else:
            cb = await rt.call(
                "CallbackSender",
                "/send",
                {"task_id": task_id, "seq_no": seq_no, "answer": state["answer"]},
            )
            state["callback"] = cb["callback"]
        await _write_state(rt, span, task_id, step, state)
    span.set_attribute("model_version", state["model_version"])
    return {
        "task_id": task_id,
        "model_version": state["model_version"],
        "callback": state["callback"],
        "from_step": from_step,
        "dispatch_origin": origin,
    }


# --- TaskPreprocessor and Vectorizer ---------------------------------------------------------


async def task_preprocessor(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    context = " ".join(str(body.get("prompt", "")).split())[:2000]
    if rt.config.skipped("Vectorizer"):
        rt.metrics.label(rt.metrics.skipped, skipped="Vectorizer").inc()
        return {"context": context, "vectorized_input": "skipped"}
    vec = await rt.call(
        "Vectorizer", "/embed", {"task_id": body.get("task_id", ""), "text": context}
    )
    return {"context": context, "vectorized_input": f"embedded:{len(vec['vector'])}"}


async def vectorizer(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """A hashed bag-of-words embedding: real (if tiny) CPU work, deterministic."""
    dims = 64
    vec = [0.0] * dims
    for word in str(body.get("text", "")).lower().split():
        vec[int(_unit(word) * dims)] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return {"vector": [round(v / norm, 4) for v in vec]}


# --- ModelExecutor, LLMAdapter, InferenceRPC -------------------------------------------------


async def model_executor(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    out = await rt.call(
        "LLMAdapter",
        "/complete",
        {"task_id": body.get("task_id", ""), "prompt": body.get("context", "")},
    )
    span.set_attribute("model_version", out["model_version"])
    return {"answer": out["answer"], "model_version": out["model_version"]}


async def llm_adapter(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """Call the configured model with a per-attempt deadline; retry once on MODEL_TIMEOUT."""
    m = rt.metrics
    model = rt.config.model
    version = MODELS[model]
    task_id = str(body.get("task_id", ""))
    span.set_attribute("model_version", version)
    for name, v in MODELS.items():
        m.label(m.active_model, model=v).set(1.0 if name == model else 0.0)
    if model == "fallback":
        m.label(m.model_fallback).inc()
        span.set_attribute("fallback_applied", True)
    for attempt in range(1, LLM_ATTEMPTS + 1):
        started = asyncio.get_running_loop().time()
        try:
            out = await rt.call(
                "InferenceRPC",
                "/infer",
                {"task_id": task_id, "model": model, "prompt": body.get("prompt", "")},
                timeout=rt.static.infer_timeout_s,
            )
        except ModuleFailure as failure:
            if not isinstance(failure, CallTimeout) and failure.error_code != MODEL_TIMEOUT:
                raise
            rt.log(
                logging.WARNING,
                f"inference timeout on {version} (attempt {attempt})",
                task_id=task_id,
                error_code=MODEL_TIMEOUT,
                model_version=version,
            )
            if attempt < LLM_ATTEMPTS:
                m.label(m.retries, reason=MODEL_TIMEOUT).inc()
                span.set_attribute("retry_count", attempt)
            continue
        finally:
            elapsed = asyncio.get_running_loop().time() - started
            m.label(m.inference_latency, model=version).observe(elapsed)
        return {"answer": out["answer"], "model_version": version}
    raise ModuleFailure(
        MODEL_TIMEOUT, f"failed inference after {LLM_ATTEMPTS} attempts on {version}", 504
    )


async def inference_rpc(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """The fake model server: a primary LLM (5-15 ms) and the fallback rule engine (~1 ms)."""
    model = str(body.get("model", "primary"))
    if model not in MODELS:
        raise ModuleFailure("UNKNOWN_MODEL", f"no model {model!r}", 400)
    version = MODELS[model]
    span.set_attribute("model_version", version)
    prompt = str(body.get("prompt", ""))
    if model == "fallback":
        await asyncio.sleep(0.001)
        return {"answer": f"[{version}] rule answer for {len(prompt.split())} words"}
    hang = rt.fault("inference-hang")
    if hang is not None:
        await asyncio.sleep(hang["hang_s"])  # the wedged queue: the answer comes far too late
    timeout = rt.fault("model-timeout")
    if timeout is not None:
        await asyncio.sleep(timeout["delay_s"])
        raise ModuleFailure(MODEL_TIMEOUT, f"{version}: model engine deadline exceeded", 504)
    await asyncio.sleep(0.005 + 0.01 * _unit(prompt + str(body.get("task_id"))))
    return {"answer": f"[{version}] answer to: {prompt[:60]}"}


# --- CallbackSender and WebhookDeliver -------------------------------------------------------


async def callback_sender(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """Deliver the result through WebhookDeliver with bounded, backed-off retries."""
    m = rt.metrics
    task_id = str(body.get("task_id", ""))
    if rt.config.skipped("WebhookDeliver"):
        rt.store.park_callback(task_id, {"answer": body.get("answer", "")})
        m.label(m.callback_deferred).inc()
        m.label(m.skipped, skipped="WebhookDeliver").inc()
        return {"callback": "deferred"}
    storm = rt.fault("retry-storm")
    attempts = int(storm["max_attempts"]) if storm else CALLBACK_ATTEMPTS
    payload = {
        "delivery_id": f"{task_id}#{body.get('seq_no', 0)}",
        "task_id": task_id,
        "answer": body.get("answer", ""),
    }
    last = ""
    for attempt in range(1, attempts + 1):
        span.set_attribute("retry_count", attempt - 1)
        try:
            await rt.call("WebhookDeliver", "/deliver", payload)
        except ModuleFailure as failure:
            last = f"{failure.error_code}: {failure.message}"
            reason = failure.error_code
        else:
            if storm is None:
                rt.store.take_callback(task_id)
                m.label(m.callback_success).inc()
                return {"callback": "delivered", "attempts": attempt}
            last, reason = "ack lost", "ACK_LOST"  # the wedged ack handling re-submits
        rt.log(
            logging.WARNING,
            f"callback attempt {attempt}/{attempts} failed: {last}",
            task_id=task_id,
            error_code=reason,
        )
        if attempt < attempts:
            m.label(m.retries, reason=reason).inc()
            if storm is None:
                await asyncio.sleep(0.01 * 2 ** (attempt - 1))
    m.label(m.callback_failures).inc()
    code = CALLBACK_RETRY_EXHAUSTED if storm else CALLBACK_FAILED
    raise ModuleFailure(code, f"callback for {task_id} failed after {attempts} attempts ({last})")


async def webhook_deliver(rt: ModuleRuntime, body: dict[str, Any], span: Span) -> dict[str, Any]:
    """The customer's webhook endpoint: de-duplicates deliveries by ``delivery_id``."""
    if rt.fault("callback-failure") is not None:
        await asyncio.sleep(0.002)
        raise ModuleFailure(
            WEBHOOK_UNREACHABLE, "webhook endpoint unreachable (connect refused)", 503
        )
    seen: OrderedDict[str, None] = rt.memory.setdefault("seen", OrderedDict())
    delivery_id = str(body.get("delivery_id", ""))
    if delivery_id in seen:
        rt.metrics.label(rt.metrics.webhook_duplicates).inc()
        raise ModuleFailure(DUPLICATE_DELIVERY, f"delivery {delivery_id} already received", 409)
    seen[delivery_id] = None
    while len(seen) > 100_000:
        seen.popitem(last=False)
    return {"delivered": True}


HANDLERS: dict[str, tuple[str, Handler]] = {
    "AgentRouter": ("/tasks", agent_router),
    "TaskPreprocessor": ("/process", task_preprocessor),
    "Vectorizer": ("/embed", vectorizer),
    "ModelExecutor": ("/execute", model_executor),
    "LLMAdapter": ("/complete", llm_adapter),
    "InferenceRPC": ("/infer", inference_rpc),
    "CallbackSender": ("/send", callback_sender),
    "WebhookDeliver": ("/deliver", webhook_deliver),
}


def build_app(module: str, static: StaticConfig, config: RuntimeConfig) -> Starlette:
    """The Starlette app of ``module``: its work route plus health, metrics and control hooks."""
    rt = ModuleRuntime(module, static, config)
    path, handler = HANDLERS[module]

    async def health(request: Request) -> JSONResponse:
        faults = [name for name in rt.config.faults if rt.fault(name) is not None]
        return JSONResponse({"module": module, "ok": True, "pid": os.getpid(), "faults": faults})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def put_config(request: Request) -> JSONResponse:
        rt.apply(RuntimeConfig.model_validate(await request.json()))
        return JSONResponse({"ok": True})

    async def task_snapshots(request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        snaps = rt.store.snapshots(task_id)
        return JSONResponse(
            {"task_id": task_id, "snapshots": [{"step": s, "state": d} for s, d in snaps]}
        )

    async def restore(request: Request) -> JSONResponse:
        """Make snapshot ``step`` of ``task_id`` the latest again (later steps are discarded)."""
        body = await request.json()
        task_id, step = str(body["task_id"]), int(body["step"])
        snap = rt.store.read_snapshot(task_id, step)
        if snap is None:
            return JSONResponse(
                {"error": f"no snapshot agent_state_snapshot:{task_id}:{step}"}, 404
            )
        dropped = rt.store.truncate_after(task_id, step)
        rt.log(
            logging.INFO,
            f"restored agent_state_snapshot:{task_id}:{step}",
            task_id=task_id,
            dropped_steps=dropped,
        )
        return JSONResponse({"task_id": task_id, "step": step, "state": snap, "dropped": dropped})

    routes = [
        Route(path, work_route(rt, handler), methods=["POST"]),
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/_testbed/config", put_config, methods=["PUT"]),
    ]
    if module == "AgentRouter":
        routes += [
            Route("/tasks/{task_id}", task_snapshots),
            Route("/_testbed/restore", restore, methods=["POST"]),
        ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt.log(logging.INFO, f"{module} started", pid=os.getpid())
        yield
        rt.log(logging.INFO, f"{module} stopping", pid=os.getpid())
        await rt.close()

    return Starlette(routes=routes, lifespan=lifespan)
