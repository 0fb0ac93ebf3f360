from __future__ import annotations

import numpy as np
import pytest

from tests.learned.conftest import make_case
from tools.core.errors import NotFoundError
from tools.learned import align_case
from tools.learned.channels import CHANNEL_INDEX, CHANNELS, metric_channel
from tools.telemetry.metric_families import metric_sign
from tools.telemetry.model import CaseTelemetry, Modality


def test_metric_names_map_to_families() -> None:
    assert metric_channel("pod_cpu_usage_cores") == "metric_cpu"
    assert metric_channel("container_memory_usage_bytes") == "metric_memory"
    assert metric_channel("pod_server_latency_p95_seconds") == "metric_latency"
    assert metric_channel("pod_success_rate_percent") == "metric_errors"
    assert metric_channel("service_request_rate_per_second") == "metric_load"
    # host series and client-side latency would blame the wrong entity
    assert metric_channel("node_cpu_usage_rate_percent") is None
    assert metric_channel("pod_client_latency_p90_seconds") is None
    assert metric_sign("pod_success_rate_percent") == -1.0


def test_shape_entities_and_channels(synthetic_case: CaseTelemetry) -> None:
    aligned = align_case(synthetic_case)
    E, m, steps = aligned.X.shape
    assert aligned.entities == ["a", "b", "c"]
    assert m == len(CHANNELS) and aligned.channels == list(CHANNELS)
    assert steps == 36  # 180 s at the 5 s metric step
    assert aligned.baseline_X.shape[:2] == (E, m)
    assert set(aligned.modalities) == {Modality.METRICS, Modality.TRACES, Modality.LOGS}
    assert np.isfinite(aligned.X).all()
    assert set(aligned.call_graph.edges) == {("a", "b"), ("b", "c")}


def test_fault_stands_out_on_its_channel(synthetic_case: CaseTelemetry) -> None:
    aligned = align_case(synthetic_case)
    cpu = CHANNEL_INDEX["metric_cpu"]
    peaks = np.abs(aligned.X[:, cpu, :]).max(axis=1)
    assert int(np.argmax(peaks)) == aligned.entities.index("b")
    assert peaks[1] > 10 * max(peaks[0], peaks[2], 0.5)
    errors = aligned.X[1, CHANNEL_INDEX["log_errors"], :]
    assert errors.max() >= 4  # 5 error lines per 5 s step against none
    assert aligned.X[1, CHANNEL_INDEX["trace_self_p95"], :].max() > 3


def test_missing_modalities_run_on_the_rest() -> None:
    aligned = align_case(make_case(traces=False, logs=False))
    assert aligned.modalities == [Modality.METRICS]
    assert not aligned.present[:, CHANNEL_INDEX["trace_p95"]].any()
    assert not aligned.present[:, CHANNEL_INDEX["log_lines"]].any()
    assert aligned.present[:, CHANNEL_INDEX["metric_cpu"]].all()
    assert aligned.call_graph.number_of_edges() == 0


def test_without_blanks_one_modality(synthetic_case: CaseTelemetry) -> None:
    aligned = align_case(synthetic_case).without(Modality.LOGS)
    assert Modality.LOGS not in aligned.modalities
    assert (aligned.X[:, CHANNEL_INDEX["log_errors"], :] == 0).all()


def test_empty_window_is_a_clear_error() -> None:
    case = make_case()
    empty = CaseTelemetry(case=case.case, baseline_metrics=case.baseline_metrics)
    with pytest.raises(NotFoundError, match="no metrics, spans or logs"):
        align_case(empty)


def test_align_from_sources_matches_align_case(synthetic_case: CaseTelemetry) -> None:
    from tools.learned import align
    from tools.telemetry.model import Incident
    from tools.telemetry.store import TelemetryStore

    store = TelemetryStore.from_case(synthetic_case)
    case = synthetic_case.case
    incident = Incident(window=case.window, baseline=case.baseline, system="SYN")
    aligned = align(store, store, store, incident)
    direct = align_case(synthetic_case)
    assert aligned.entities == direct.entities
    assert set(aligned.modalities) == set(direct.modalities)
    assert np.allclose(aligned.X, direct.X, atol=1e-4)
    only_metrics = align(None, None, store, incident)
    assert only_metrics.modalities == [Modality.METRICS]


def test_declared_topology_joins_the_call_graph_and_survives_dropping_traces() -> None:
    from tools.learned.aligned import align_tables
    from tools.telemetry.topology import Topology

    ct = make_case(seed=3)
    aligned = align_tables(
        ct.spans,
        ct.logs,
        ct.metrics,
        ct.case.window,
        ct.baseline_spans,
        ct.baseline_logs,
        ct.baseline_metrics,
        topology=Topology(edges=[(a, b) for b, a in align_case(ct).call_graph.edges]),
    )
    reversed_edges = [
        (a, b) for a, b, d in aligned.call_graph.edges(data=True) if d.get("declared")
    ]
    assert reversed_edges
    assert set(reversed_edges) <= set(aligned.without(Modality.TRACES).call_graph.edges)
    assert "series" in aligned.metric_health
