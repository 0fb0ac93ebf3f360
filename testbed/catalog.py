"""What the testbed is made of: its modules, models, error codes, faults and repair actions.

Why one data module: the controller, the module processes, the CLI, the tests and the repair
strategy library (helper H's, through ``readme_testbed.md``) must agree on the *same* fault ->
symptom -> repair mapping. Writing it once as data keeps the behaviour in ``modules.py`` and
the control rules in ``controller.py`` honest: a fault only exists if it is listed here.

The call tree is the seed's (chapter 1)::

    AgentRouter
    ├── TaskPreprocessor
    │   └── Vectorizer
    ├── ModelExecutor
    │   └── LLMAdapter
    │       └── InferenceRPC
    └── CallbackSender
        └── WebhookDeliver
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MODULES: tuple[str, ...] = (
    "AgentRouter",
    "TaskPreprocessor",
    "Vectorizer",
    "ModelExecutor",
    "LLMAdapter",
    "InferenceRPC",
    "CallbackSender",
    "WebhookDeliver",
)

# caller -> callees, in call order (the only edges a healthy trace has)
CALLS: dict[str, tuple[str, ...]] = {
    "AgentRouter": ("TaskPreprocessor", "ModelExecutor", "CallbackSender"),
    "TaskPreprocessor": ("Vectorizer",),
    "ModelExecutor": ("LLMAdapter",),
    "LLMAdapter": ("InferenceRPC",),
    "CallbackSender": ("WebhookDeliver",),
}

# Models served by InferenceRPC: the primary LLM and the fallback rule engine (seed ch. 7).
MODELS: dict[str, str] = {"primary": "llm-primary-v4.1.0", "fallback": "rule_engine_v2"}

# Modules whose work may be skipped by a skip flag (seed ch. 5 "单步跳转": non-critical only).
SKIPPABLE: tuple[str, ...] = ("Vectorizer", "CallbackSender", "WebhookDeliver")

# Task steps; a snapshot ``agent_state_snapshot:<task>:<step>`` is written after each one.
STEPS: dict[int, str] = {0: "received", 1: "preprocessed", 2: "model_output", 3: "callback"}

# Error codes a span, log line or response may carry.
MODEL_TIMEOUT = "MODEL_TIMEOUT"
WEBHOOK_UNREACHABLE = "WEBHOOK_UNREACHABLE"
CALLBACK_FAILED = "CALLBACK_FAILED"
DUPLICATE_DELIVERY = "DUPLICATE_DELIVERY"
CALLBACK_RETRY_EXHAUSTED = "CALLBACK_RETRY_EXHAUSTED"
STATE_WRITE_ERROR = "STATE_WRITE_ERROR"
CONTEXT_LOST = "CONTEXT_LOST"
UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
DUPLICATE_DISPATCH = "DUPLICATE_DISPATCH"
REDISPATCH_LIMIT = "REDISPATCH_LIMIT"
SNAPSHOT_NOT_FOUND = "SNAPSHOT_NOT_FOUND"

ActionKind = Literal["restart", "switch_model", "skip", "restore_snapshot", "redispatch", "clear"]


@dataclass(frozen=True)
class Action:
    """A repair action of the control API; ``arg`` is the module, model or ``None``."""

    kind: ActionKind
    arg: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}({self.arg})" if self.arg else self.kind


@dataclass(frozen=True)
class FaultSpec:
    """One injectable fault.

    ``scope`` says where the broken state lives: ``process`` faults live in the target process's
    memory (a wedged queue, a polluted context cache, an overflowing exporter buffer), so a real
    restart of that process clears them; ``persistent`` faults live outside it (a bad model
    version, an unreachable webhook endpoint, a corrupt state head) and survive restarts.
    ``clears`` are the actions that remove the fault; ``bypasses`` are the actions that leave the
    fault in place but route the work around it (undoing them brings the symptoms back).
    """

    name: str
    target: str
    scope: Literal["process", "persistent"]
    description: str
    symptoms: tuple[str, ...]
    error_code: str
    clears: tuple[Action, ...] = ()
    bypasses: tuple[Action, ...] = ()
    params: dict[str, float] = field(default_factory=dict)


FAULTS: dict[str, FaultSpec] = {
    f.name: f
    for f in (
        FaultSpec(
            name="inference-hang",
            target="InferenceRPC",
            scope="process",
            description="the primary model's request queue in InferenceRPC is wedged: calls hang",
            symptoms=(
                "InferenceRPC spans last hang_s seconds and answer nothing in time",
                "LLMAdapter spans: error_code=MODEL_TIMEOUT after a retry, log 'inference timeout'",
                "agent_task_latency_seconds{module=AgentRouter} P95 rises to ~2 x infer_timeout_s",
                "agent_task_total{status=failed} and agent_retry_total{module=LLMAdapter} rise",
            ),
            error_code=MODEL_TIMEOUT,
            clears=(Action("restart", "InferenceRPC"),),
            bypasses=(Action("switch_model", "fallback"),),
            params={"hang_s": 10.0},
        ),
        FaultSpec(
            name="model-timeout",
            target="InferenceRPC",
            scope="persistent",
            description="a bad primary model version times out internally on every call",
            symptoms=(
                "InferenceRPC spans: error_code=MODEL_TIMEOUT after delay_s",
                "LLMAdapter retries (agent_retry_total{module=LLMAdapter}), fails MODEL_TIMEOUT",
                "inference_latency_seconds{model=llm-primary-v4.1.0} and task failures rise",
            ),
            error_code=MODEL_TIMEOUT,
            bypasses=(Action("switch_model", "fallback"),),
            params={"delay_s": 0.2},
        ),
        FaultSpec(
            name="callback-failure",
            target="WebhookDeliver",
            scope="persistent",
            description="the customer webhook endpoint behind WebhookDeliver is unreachable",
            symptoms=(
                "WebhookDeliver spans: error_code=WEBHOOK_UNREACHABLE (HTTP 503), 3 per trace",
                "CallbackSender retries then fails CALLBACK_FAILED; callback_failure_total rises",
                "agent_task_total{module=AgentRouter,status=failed} rises",
            ),
            error_code=WEBHOOK_UNREACHABLE,
            bypasses=(Action("skip", "WebhookDeliver"), Action("skip", "CallbackSender")),
        ),
        FaultSpec(
            name="retry-storm",
            target="CallbackSender",
            scope="process",
            description="CallbackSender's ack handling is wedged: it re-submits every callback",
            symptoms=(
                "CallbackSender re-sends each callback max_attempts times without backoff",
                "agent_retry_total{module=CallbackSender} explodes; WebhookDeliver spans repeat",
                "WebhookDeliver answers DUPLICATE_DELIVERY; webhook_duplicate_total rises",
                "tasks fail CALLBACK_RETRY_EXHAUSTED; callback_failure_total rises",
            ),
            error_code=CALLBACK_RETRY_EXHAUSTED,
            clears=(Action("restart", "CallbackSender"),),
            bypasses=(Action("skip", "WebhookDeliver"), Action("skip", "CallbackSender")),
            params={"max_attempts": 8.0},
        ),
        FaultSpec(
            name="state-write-error",
            target="AgentRouter",
            scope="persistent",
            description="the agent state store's head version is corrupt: snapshot writes fail",
            symptoms=(
                "AgentRouter spans: error_code=STATE_WRITE_ERROR, event state_write ok=false",
                "agent_state_write_error_total and agent_retry_total{module=AgentRouter} rise",
                "tasks fail right after dispatch (no downstream spans)",
            ),
            error_code=STATE_WRITE_ERROR,
            clears=(Action("restore_snapshot"),),
        ),
        FaultSpec(
            name="span-drop",
            target="LLMAdapter",
            scope="process",
            description="LLMAdapter's span export buffer overflows: its spans are dropped",
            symptoms=(
                "traces lack the LLMAdapter span: InferenceRPC spans point at a missing parent",
                "span_dropped_total{module=LLMAdapter} rises; tasks still succeed",
            ),
            error_code="SPAN_DROPPED",
            clears=(Action("restart", "LLMAdapter"),),
        ),
        FaultSpec(
            name="context-loss",
            target="ModelExecutor",
            scope="process",
            description="ModelExecutor's context extraction is broken: it starts new traces",
            symptoms=(
                "one task_id appears in two traces: ModelExecutor's subtree is a separate root",
                "AgentRouter traces miss ModelExecutor/LLMAdapter/InferenceRPC (broken chain)",
                "ModelExecutor logs warning error_code=CONTEXT_LOST; trace_context_lost_total",
            ),
            error_code=CONTEXT_LOST,
            clears=(Action("restart", "ModelExecutor"),),
        ),
    )
}

# What an error code on a span says, for a reader of the telemetry: the fault it names and whom it
# blames (the span's own module, its parent — a receiver reporting duplicates blames the sender —
# or its callee). Published with the rest (``catalog_document``); the product reads it as data.
ERROR_CODE_MEANINGS: dict[str, tuple[str, Literal["self", "parent", "callee"]]] = {
    STATE_WRITE_ERROR: ("state_write_error", "self"),
    WEBHOOK_UNREACHABLE: ("callback_failure", "self"),
    CALLBACK_FAILED: ("callback_failure", "callee"),
    DUPLICATE_DELIVERY: ("retry_storm", "parent"),
    CALLBACK_RETRY_EXHAUSTED: ("retry_storm", "self"),
    MODEL_TIMEOUT: ("model_timeout", "self"),
    CONTEXT_LOST: ("context_loss", "self"),
}
CATALOG_FILE = "fault_catalog.json"


def _action(a: Action) -> dict[str, object]:
    return {"kind": a.kind, "arg": a.arg}


def fault_entries() -> dict[str, dict[str, object]]:
    """Every fault as the published document describes it (also what ``GET /faults`` lists)."""
    return {
        f.name: {
            "name": f.name,
            "target": f.target,
            "scope": f.scope,
            "description": f.description,
            "symptoms": list(f.symptoms),
            "error_code": f.error_code,
            "clears": [_action(a) for a in f.clears],
            "bypasses": [_action(a) for a in f.bypasses],
            "params": dict(f.params),
        }
        for f in FAULTS.values()
    }


def catalog_document() -> dict[str, object]:
    """The catalogue as the document the testbed publishes (``tools.core.fault_catalog`` schema)."""
    return {
        "system": "agent-platform-testbed",
        "modules": list(MODULES),
        "calls": {k: list(v) for k, v in CALLS.items()},
        "error_codes": {c: {"fault": f, "blame": b} for c, (f, b) in ERROR_CODE_MEANINGS.items()},
        "faults": fault_entries(),
    }


def publish(path: Path) -> Path:
    """Write the catalogue document to ``path`` (atomically: readers never see half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(catalog_document(), indent=1))
    tmp.replace(path)
    return path
