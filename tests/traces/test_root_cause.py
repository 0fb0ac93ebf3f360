"""Reasons per injected anomaly kind, and consequences never blamed (ancestors, later steps)."""

from __future__ import annotations

from collections import Counter

from evals.traces_synth import SynthData
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
