"""Reasons per injected anomaly kind, and consequences never blamed (ancestors, later steps)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evals.traces_synth import SynthData, write_otlp
from evals.traces_synth_independent import IndependentData, generate
from tools.telemetry.ingest import parse_file
from tools.traces import TraceConfig, analyze_traces

EXPECTED = {
    "hang": {"timeout/hang"},
    "retry_storm": {"retry storm", "retry exhausted"},
    "error": {"error"},
    "missing": {"missing downstream"},
    "fork": {"forked path"},
    "slow": {"latency", "timeout/hang"},  # 12x a fast module's p99 can be a hang by the rule
}


def test_each_kind_gets_its_reason(synth: SynthData, fast_config: TraceConfig) -> None:
    a = analyze_traces(synth.spans, config=fast_config)
    reasons: dict[str, Counter[str]] = {}
    for t in a.traces:
        kind, _ = synth.labels[t.trace_id]
        if kind != "normal" and t.anomalous:
            reasons.setdefault(kind, Counter())[t.reason] += 1
    assert set(reasons) == set(EXPECTED)
    for kind, got in reasons.items():
        assert set(got) <= EXPECTED[kind], (kind, got)


# --- shapes the rules were not written for (evals/traces_synth_independent.py) ---------------


@pytest.fixture(scope="module")
def assistant() -> IndependentData:
    return generate(1500, seed=7, topology="assistant", anomaly_rate=0.12)


Roots = dict[str, list[tuple[str, str]]]  # fault kind -> [(injected root, reported root)]


def _roots_by_kind(data: IndependentData, spans: pa.Table) -> Roots:
    a = analyze_traces(spans, config=TraceConfig(ae_epochs=8, seed=0))
    out: dict[str, list[tuple[str, str]]] = {}
    for t in a.traces:
        kind, root = data.labels[t.trace_id]
        if kind != "normal" and t.anomalous:
            out.setdefault(kind, []).append((str(root), str(t.root_span)))
    return out


def _accuracy(pairs: list[tuple[str, str]]) -> float:
    return sum(truth == got for truth, got in pairs) / len(pairs)


@pytest.fixture(scope="module")
def got(assistant: IndependentData) -> Roots:
    return _roots_by_kind(assistant, assistant.spans)


def test_a_span_never_exported_is_blamed_not_its_healthy_parent(
    assistant: IndependentData, got: Roots
) -> None:
    # the middle span is absent: the module that normally parents the orphans is named
    assert len(got["lost_span"]) >= 10 and _accuracy(got["lost_span"]) >= 0.9
    absent = {truth for truth, _ in got["lost_span"]}
    present = set(
        (
            pc.binary_join_element_wise(
                assistant.spans["service"], assistant.spans["operation"], "::"
            )
        ).to_pylist()
    )
    assert absent <= present  # ... spelled as the normal traffic spells it


def test_retry_storms_blame_the_retried_callee(got: Roots) -> None:
    storms = got["retry_storm"]
    # client-span attempts, refused connections and bare server attempts: never the caller
    assert len(storms) >= 10 and _accuracy(storms) >= 0.9
    assert not any(got_.startswith("AgentOrchestrator::") for _, got_ in storms)


def test_root_spans_keep_the_inputs_spelling_through_otlp_json(
    assistant: IndependentData, tmp_path
) -> None:
    parsed = parse_file(write_otlp(assistant.spans, tmp_path / "traces.json"))
    got = _roots_by_kind(assistant, parsed.spans)
    names = {
        f"{s}::{o}"
        for s, o in zip(
            assistant.spans["service"].to_pylist(),
            assistant.spans["operation"].to_pylist(),
            strict=True,
        )
    }
    reported = {r for pairs in got.values() for _, r in pairs}
    assert reported <= names and any(n != n.lower() for n in reported)
    assert _accuracy([p for pairs in got.values() for p in pairs]) >= 0.9
