"""End to end on synthetic agent call chains: detection, root spans, batching, contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evals.traces_eval import score_detection
from evals.traces_synth import SynthData
from tools.traces import TraceConfig, analyze_traces

REPO = Path(__file__).resolve().parents[2]


def test_detects_injected_anomalies_and_names_their_root(
    synth: SynthData, fast_config: TraceConfig
) -> None:
    a = analyze_traces(synth.spans, logs=synth.logs, config=fast_config)
    s = score_detection(a, synth.labels)
    assert s["f1"] >= 0.95, s
    assert s["root_span_accuracy"] >= 0.95, s
    assert a.baseline_source == "input"
    assert a.clusters and all(c.size >= 1 for c in a.clusters)
    clustered = {t.cluster_id for t in a.traces if t.anomalous}
    assert None not in clustered
    assert clustered == {c.cluster_id for c in a.clusters}


def test_baseline_gives_same_quality(
    synth: SynthData, normal: SynthData, fast_config: TraceConfig
) -> None:
    a = analyze_traces(synth.spans, baseline=normal.spans, logs=synth.logs, config=fast_config)
    s = score_detection(a, synth.labels)
    assert a.baseline_source == "baseline"
    assert s["f1"] >= 0.95 and s["root_span_accuracy"] >= 0.9, s


def test_batches_do_not_change_results(synth: SynthData) -> None:
    one = analyze_traces(synth.spans, config=TraceConfig(ae_epochs=4))
    many = analyze_traces(
        synth.spans, config=TraceConfig(ae_epochs=4, window_s=5.0, max_spans_per_batch=2000)
    )
    assert many.batches > 5 and one.batches == 1
    key = lambda a: {(t.trace_id, t.anomalous, t.root_span, t.reason) for t in a.traces}  # noqa: E731
    assert key(one) == key(many)


def test_contract_and_summary_are_compact(synth: SynthData, fast_config: TraceConfig) -> None:
    a = analyze_traces(synth.spans, logs=synth.logs, config=fast_config)
    out = a.to_contract()
    assert set(out) >= {"traces", "clusters", "incidents"}
    assert set(out["traces"][0]) == {
        "trace_id",
        "anomalous",
        "anomaly_score",
        "cluster_id",
        "root_span",
        "reason",
        "fingerprint_id",
    }
    assert {"cluster_id", "size", "root_span", "fingerprint"} <= set(out["clusters"][0])
    assert all("::" in t["root_span"] for t in out["traces"] if t["anomalous"])
    assert len(a.summary()) < 3000  # a few hundred tokens


def test_recurring_fingerprint_raises_incident(synth: SynthData) -> None:
    a = analyze_traces(
        synth.spans, config=TraceConfig(ae_epochs=4, alert_count=3, alert_window_s=3600)
    )
    assert a.incidents
    inc = a.incidents[0]
    assert inc.count > 3
    members = {t.trace_id for t in a.traces if t.fingerprint_id == inc.fingerprint_id}
    assert set(inc.trace_ids) <= members


def test_template_state_persists_across_analyses(synth: SynthData, tmp_path) -> None:
    state = tmp_path / "drain.json"
    config = TraceConfig(ae_epochs=2, template_state=state)
    first = analyze_traces(synth.spans, logs=synth.logs, config=config)
    assert state.exists()
    again = analyze_traces(synth.spans, logs=synth.logs, config=config)
    sig = lambda a: sorted(tuple(c.fingerprint.log_signature) for c in a.clusters)  # noqa: E731
    assert sig(first) == sig(again)


def test_the_analysis_path_imports_no_heavy_library() -> None:
    """``tamo traces analyze`` pays every import on each launch: numpy and pyarrow only."""
    code = (
        "import sys\n"
        "import tools.traces, tools.telemetry.ingest, tools.traces.stream\n"
        "heavy = {'torch', 'sklearn', 'scipy', 'pandas', 'langgraph', 'matplotlib'}\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""
