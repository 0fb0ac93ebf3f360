"""Triage on synthetic call chains: each broken shape must name its module and fault type, and
the alert raised for it must carry that suspect with the window's error codes and tasks."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from testbed.catalog import catalog_document
from tools.core.fault_catalog import FaultCatalog
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.traces.alerting import TraceAlert, alert_of
from tools.traces.live import (
    BaselineShape,
    LiveTraceDetector,
    WindowVerdict,
    complete_traces,
    error_codes,
)

CHAIN = [  # (service, parent index)
    ("AgentRouter", None),
    ("TaskPreprocessor", 0),
    ("ModelExecutor", 0),
    ("LLMAdapter", 2),
    ("InferenceRPC", 3),
    ("CallbackSender", 0),
    ("WebhookDeliver", 5),
]
DUR_MS = [120, 20, 60, 50, 40, 20, 10]


def trace(
    n: int,
    t0: int,
    *,
    drop: str | None = None,
    new_root: str | None = None,
    error: dict[str, str] | None = None,
    rng: random.Random,
) -> list[dict]:
    rows = []
    ids = [f"{n:08x}{i:08x}" for i in range(len(CHAIN))]
    tid = f"{n:032x}"
    moved: set[int] = set()  # new_root and its descendants start a new trace
    for i, (svc, parent) in enumerate(CHAIN):
        if svc == new_root or (parent is not None and parent in moved):
            moved.add(i)
        if svc == drop:
            continue
        dur = int(DUR_MS[i] * 1e6 * rng.uniform(0.9, 1.1))
        start = t0 + i * 1_000_000
        code = (error or {}).get(svc)
        pid = None if parent is None else ids[parent]
        rows.append(
            {
                "trace_id": f"{n + 10**6:032x}" if i in moved else tid,
                "span_id": ids[i],
                "parent_id": None if svc == new_root else pid,
                "service": svc,
                "pod": None,
                "operation": svc,
                "kind": "server",
                "start_ns": start,
                "end_ns": start + dur,
                "duration_ns": dur,
                "status": "error" if code else "ok",
                "error_code": "500" if code else "200",
                "attributes": json.dumps(
                    {"task_id": f"task-{n}", **({"error_code": code} if code else {})}
                ),
            }
        )
    return rows


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


_FITTED: list[LiveTraceDetector] = []


def detector() -> tuple[LiveTraceDetector, random.Random]:
    """One detector fitted on 120 healthy traces (fitting trains an autoencoder: done once)."""
    if not _FITTED:
        rng = random.Random(0)
        base = table([r for n in range(120) for r in trace(n, n * 10**8, rng=rng)])
        # the testbed's published catalogue says what its error codes mean (data, not code)
        meanings = FaultCatalog.model_validate(catalog_document()).error_codes
        _FITTED.append(LiveTraceDetector(base, error_codes=meanings))
    return _FITTED[0], random.Random(7)


def window(rng: random.Random, healthy: int, broken: int, **fault: object) -> pa.Table:
    rows = [r for n in range(1000, 1000 + healthy) for r in trace(n, n * 10**8, rng=rng)]
    rows += [r for n in range(2000, 2000 + broken) for r in trace(n, n * 10**8, rng=rng, **fault)]
    return table(rows)


def verdict_of(**fault: object):
    det, rng = detector()
    v = det.judge(window(rng, 10, 10, **fault))
    assert v.anomalous >= 5 and v.ratio >= 0.3, v
    return _alert(v)


WINDOW = TimeWindow(
    start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
)


def _alert(v: WindowVerdict) -> TraceAlert:
    a = alert_of(v, WINDOW, None, 0.0)
    assert a is not None
    return a


def test_healthy_window_is_quiet() -> None:
    det, rng = detector()
    v = det.judge(window(rng, 30, 0))
    assert v.ratio < 0.1 and v.traces == 30 and len(v.judged) == 30


def test_orphans_blame_their_usual_parent() -> None:
    d = verdict_of(drop="LLMAdapter")
    assert (d.suspect, d.fault_type) == ("LLMAdapter", "span_drop")


def test_a_module_starting_traces_lost_its_context() -> None:
    d = verdict_of(new_root="ModelExecutor")
    assert (d.suspect, d.fault_type) == ("ModelExecutor", "context_loss")
    assert d.share == 1.0  # the callers' traces that lack it point at it too
    assert not any("ModelExecutor context_loss" in e for e in d.evidence()[2:])


def test_error_codes_name_the_fault_and_who_is_to_blame() -> None:
    d = verdict_of(error={"AgentRouter": "STATE_WRITE_ERROR"})
    assert (d.suspect, d.fault_type) == ("AgentRouter", "state_write_error")
    d = verdict_of(
        error={"WebhookDeliver": "DUPLICATE_DELIVERY", "AgentRouter": "CALLBACK_RETRY_EXHAUSTED"}
    )
    assert (d.suspect, d.fault_type) == ("CallbackSender", "retry_storm")  # the sender
    assert d.error_codes[0] in ("DUPLICATE_DELIVERY", "CALLBACK_RETRY_EXHAUSTED")
    assert d.task_ids and d.trace_ids and "traces anomalous" in d.evidence()[0]
    assert d.severity == "critical" and d.share == 1.0


def test_a_timeout_with_an_absent_callee_is_the_callee_hanging() -> None:
    d = verdict_of(
        drop="InferenceRPC",
        error={
            "LLMAdapter": "MODEL_TIMEOUT",
            "ModelExecutor": "MODEL_TIMEOUT",
            "AgentRouter": "MODEL_TIMEOUT",
        },
    )
    assert (d.suspect, d.fault_type) == ("InferenceRPC", "inference_hang")


def test_partial_traces_wait_for_their_root() -> None:
    rng = random.Random(1)
    rows = trace(1, 0, rng=rng) + trace(2, 10**9, rng=rng)
    t = table([r for r in rows if not (r["trace_id"].endswith("2") and r["parent_id"] is None)])
    assert set(complete_traces(t, 10**12)["trace_id"].to_pylist()) == {f"{1:032x}"}
    assert complete_traces(t, 0).num_rows == 0  # the root has not ended yet


def test_error_code_prefers_the_platform_attribute() -> None:
    rng = random.Random(2)
    t = table(trace(1, 0, rng=rng, error={"LLMAdapter": "MODEL_TIMEOUT"}))
    codes = dict(zip(t["service"].to_pylist(), error_codes(t), strict=True))
    assert codes["LLMAdapter"] == "MODEL_TIMEOUT" and codes["AgentRouter"] is None
    shape = BaselineShape.of(t)
    assert shape.roots == {"AgentRouter"} and shape.parent_of["InferenceRPC"] == "LLMAdapter"


def test_a_late_callee_span_does_not_turn_a_fast_failure_into_a_hang() -> None:
    """The callee answers MODEL_TIMEOUT in some traces; where its span is not exported yet the
    caller's timeout must not be read as a hang."""
    det, rng = detector()
    codes = {
        "InferenceRPC": "MODEL_TIMEOUT",
        "LLMAdapter": "MODEL_TIMEOUT",
        "AgentRouter": "MODEL_TIMEOUT",
    }
    rows = [r for n in range(3000, 3006) for r in trace(n, n * 10**8, rng=rng, error=codes)]
    rows += [
        r
        for n in range(4000, 4008)
        for r in trace(n, n * 10**8, rng=rng, error=codes, drop="InferenceRPC")
    ]
    d = _alert(det.judge(table(rows)))
    assert (d.suspect, d.fault_type) == ("InferenceRPC", "model_timeout")


class _BlindModel:
    """The learned model, with its verdicts all 'normal': what a loose threshold looks like."""

    def __init__(self, model) -> None:
        self.model = model

    def score(self, forest):
        batch = self.model.score(forest)
        batch.anomalous = batch.anomalous & False
        return batch


def test_broken_structure_is_anomalous_whatever_the_learned_scores_say() -> None:
    det, rng = detector()
    blind = copy.copy(det)
    blind.model = _BlindModel(det.model)
    v = blind.judge(window(rng, 10, 10, drop="LLMAdapter"), now_ns=2**62)
    assert v.anomalous == 10 and v.votes == {"LLMAdapter|span_drop": 10}
    v = blind.judge(window(rng, 10, 10, new_root="ModelExecutor"), now_ns=2**62)
    assert v.votes.get("ModelExecutor|context_loss", 0) >= 10
    assert blind.judge(window(rng, 20, 0), now_ns=2**62).anomalous == 0


def test_an_orphan_waits_for_its_late_parent() -> None:
    det, rng = detector()
    spans = window(rng, 0, 5, drop="LLMAdapter")
    ended = pc.max(spans["end_ns"]).as_py()
    v = det.judge(spans, now_ns=ended + int(0.1e9))  # within late_grace_s: may still come
    assert v.votes == {} and v.judged == []
    v = det.judge(spans, now_ns=ended + int(det.late_grace_s * 1e9) + 1)
    assert v.votes == {"LLMAdapter|span_drop": 5} and len(v.judged) == 5


def test_the_normal_rate_is_measured_on_traces_the_model_did_not_learn() -> None:
    det, _ = detector()
    assert det.normal_traces == 120
    assert 0 <= det.normal_anomalous <= 12  # healthy synthetic traffic: a few at most


def test_a_late_parent_at_learning_time_does_not_teach_that_broken_chains_are_normal() -> None:
    rng = random.Random(11)
    rows = [r for n in range(120) for r in trace(n, n * 10**8, rng=rng)]
    rows += [r for n in range(120, 126) for r in trace(n, n * 10**8, rng=rng, drop="LLMAdapter")]
    det = LiveTraceDetector(table(rows))
    assert det.normal_traces == 120  # the six traces missing a parent were not learned
    v = det.judge(window(random.Random(5), 10, 10, drop="LLMAdapter"), now_ns=2**62)
    assert v.votes == {"LLMAdapter|span_drop": 10}
