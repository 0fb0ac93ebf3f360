"""Nezha adapter on the real data: the labelled cases the data card documents, and case loading.

The per-day counts below are copied from the data card tables (``../shared/datasets/README.md``,
"Labelled cases"): they are documented facts about the dataset, not tuned expectations.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tools.core.errors import DatasetError, InputError
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, Modality

DATA_CARD = {
    "2022-08-22": (
        "OB",
        {"cpu_contention": 8, "network_delay": 7, "cpu_consumed": 3, "return": 3, "exception": 3},
        {
            "frontend": 4,
            "checkoutservice": 4,
            "recommendationservice": 3,
            "adservice": 2,
            "cartservice": 2,
            "currencyservice": 2,
            "emailservice": 2,
            "paymentservice": 2,
            "shippingservice": 2,
            "productcatalogservice": 1,
        },
    ),
    "2023-01-29": (
        "TT",
        {"exception": 13, "return": 11, "cpu_contention": 4},
        {
            "ts-basic-service": 4,
            "ts-contacts-service": 4,
            "ts-verification-code-service": 4,
            "ts-food-service": 3,
            "ts-price-service": 3,
            "ts-route-service": 3,
            "ts-travel-service": 3,
            "ts-travel2-service": 3,
            "ts-preserve-service": 1,
        },
    ),
}

nezha = get_adapter("nezha")


@pytest.fixture(scope="module")
def cases(nezha_root: Path):
    return nezha.cases(nezha_root)


@pytest.mark.parametrize("day", sorted(DATA_CARD))
def test_cases_per_day_match_the_data_card(nezha_root: Path, day: str) -> None:
    system, fault_types, services = DATA_CARD[day]
    day_cases = nezha.cases(nezha_root, [day])
    assert len(day_cases) == sum(fault_types.values())
    assert {c.system for c in day_cases} == {system}
    assert Counter(c.fault_type for c in day_cases) == fault_types
    assert Counter(c.service for c in day_cases) == services


def test_all_cases_have_unique_ids_and_utc_injection(cases) -> None:
    assert len(cases) == 52
    assert len({c.case_id for c in cases}) == 52
    for c in cases:
        assert c.injected_at is not None and c.injected_at.utcoffset().total_seconds() == 0
        assert c.window.start < c.injected_at < c.window.end
        assert Modality.METRICS in c.modalities


def test_case_fields_follow_the_data_card(cases) -> None:
    by_id = {c.case_id: c for c in cases}
    first = by_id["2022-08-22/frontend-579b9bff58-t2dbm/035354"]
    assert first.injected_at == datetime(2022, 8, 22, 3, 53, 54, tzinfo=UTC)
    assert first.pod == "frontend-579b9bff58-t2dbm"
    assert (first.service, first.fault_type) == ("frontend", "cpu_contention")
    assert first.window.start == datetime(2022, 8, 22, 3, 52, tzinfo=UTC)
    assert first.window.end == datetime(2022, 8, 22, 3, 56, tzinfo=UTC)
    # TT: inject_time read as UTC, not inject_timestamp (8 h earlier for this fault)
    tt = by_id["2023-01-29/ts-contacts-service-866bd68c97-xcqfx/084304"]
    assert tt.injected_at == datetime(2023, 1, 29, 8, 43, 4, tzinfo=UTC)
    assert tt.modalities == [Modality.METRICS, Modality.TRACES, Modality.LOGS]
    # the fault-free slot Nezha uses (construct_data 08_50) never overlaps a case window
    assert tt.baseline is not None
    for c in cases:
        if c.system == "TT":
            assert c.window.end <= tt.baseline.start or c.window.start >= tt.baseline.end


def test_missing_trace_slots_drop_the_modality(cases) -> None:
    """OB 04:52:55 has no trace file for any of its slots (MISSING_FILES.tsv)."""
    case = next(c for c in cases if c.case_id.endswith("/045255"))
    assert case.modalities == [Modality.METRICS]


def test_load_tt_case_has_every_modality_cut_to_its_window(nezha_root: Path, cases) -> None:
    case = next(c for c in cases if c.case_id.endswith("/084304"))
    ct = nezha.load_case(nezha_root, case)
    assert ct.spans.schema == SPAN_SCHEMA and ct.logs.schema == LOG_SCHEMA
    assert ct.metrics.schema == METRIC_SCHEMA
    assert ct.modalities == [Modality.METRICS, Modality.TRACES, Modality.LOGS]
    w = case.window
    assert pc.min(ct.spans["start_ns"]).as_py() >= w.start_ns
    assert pc.max(ct.spans["start_ns"]).as_py() < w.end_ns
    assert pc.min(ct.logs["ts_ns"]).as_py() >= w.start_ns
    assert ct.spans.num_rows == pc.count_distinct(ct.spans["span_id"]).as_py()
    # root spans enter through the gateway; parent 'root' became null
    roots = ct.spans.filter(pc.is_null(ct.spans["parent_id"]))
    assert set(roots["service"].to_pylist()) == {"ts-gateway-service"}
    assert set(ct.spans["status"].to_pylist()) == {"unset"}
    # TT Logback severities come from the level token
    assert {"INFO", "WARN"} <= set(ct.logs["severity"].to_pylist())
    names = set(ct.metrics["name"].to_pylist())
    assert {"pod_cpu_usage_rate_percent", "pod_server_latency_p90_seconds"} <= names
    assert "entry_latency_p90_seconds" in names
    assert "entry_success_rate_percent" not in names  # 0 in all TT rows: dropped
    entry = ct.metrics.filter(pc.equal(ct.metrics["name"], "entry_latency_p90_seconds"))
    assert set(entry["service"].to_pylist()) == {"ts-gateway-service"}
    # baseline: the complete fault-free slot 08_50
    assert ct.baseline_spans.num_rows > 1000 and ct.baseline_logs.num_rows > 100
    assert ct.baseline_metrics.num_rows > 0


def test_load_ob_case_with_missing_slots_and_pre_injection_metric_baseline(
    nezha_root: Path, cases
) -> None:
    case = next(c for c in cases if c.case_id.endswith("/045255"))
    ct = nezha.load_case(nezha_root, case, metric_baseline_minutes=5)
    assert ct.spans.num_rows == 0 and ct.logs.num_rows == 0
    assert ct.baseline_spans.num_rows == 0  # OB fault-free traces are missing
    pods = set(ct.metrics["pod"].drop_null().to_pylist())
    assert len(pods) == 10
    base = ct.baseline_metrics["ts_ns"]
    assert pc.max(base).as_py() < case.window.start_ns
    assert pc.min(base).as_py() >= case.window.start_ns - 5 * 60 * 10**9
    edges = ct.metrics.filter(pc.equal(ct.metrics["name"], "edge_latency_p50_seconds"))
    assert edges.num_rows > 0


def test_trace_id_lists_cover_the_spans_and_exist_without_trace_files(
    nezha_root: Path, cases
) -> None:
    tt = next(c for c in cases if c.case_id.endswith("/084304"))
    ids = set(nezha.trace_ids(nezha_root, tt).to_pylist())
    spans = nezha.load_case(nezha_root, tt).spans
    assert set(pc.unique(spans["trace_id"]).to_pylist()) <= ids
    ob = next(c for c in cases if c.case_id.endswith("/045255"))
    assert len(nezha.trace_ids(nezha_root, ob)) > 100  # no trace file, but the list is there


def test_unknown_day_is_a_dataset_error_naming_the_path(nezha_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"2021-01-01-fault_list\.json"):
        nezha.cases(nezha_root, ["2021-01-01"])


def test_missing_root_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=str(tmp_path / "nope")):
        nezha.cases(tmp_path / "nope")


def test_iter_telemetry_streams_whole_files_by_kind(nezha_root: Path) -> None:
    items = list(nezha.iter_telemetry(nezha_root, ["2022-08-22"], kinds=["metrics"]))
    # 10 pod files + front_service + source_50 + destination_50 (data card: OB has 10 pods)
    assert len(items) == 13
    assert {kind for kind, _, _ in items} == {"metrics"}
    for _, source, table in items:
        assert Path(source).is_file() and table.schema == METRIC_SCHEMA
    first = next(iter(nezha.iter_telemetry(nezha_root, ["2023-01-29"], kinds=["spans"])))
    assert first[0] == "spans" and first[1].endswith("08_43_trace.csv.gz")
    assert first[2].schema == SPAN_SCHEMA and first[2].num_rows > 1000
    with pytest.raises(DatasetError, match="unknown telemetry kind"):
        nezha.iter_telemetry(nezha_root, kinds=["traces"])


def _fake_day(root: Path, fault_list: str) -> Path:
    day = root / "rca_data" / "2030-01-01"
    (day / "metric").mkdir(parents=True)
    (day / "metric" / "ts-a-service-5dc8d4f9fd-46997_metric.csv").write_text("Time\n")
    path = day / "2030-01-01-fault_list.json"
    path.write_text(fault_list)
    return path


def test_malformed_fault_list_names_file_and_line(tmp_path: Path) -> None:
    path = _fake_day(tmp_path, '{\n  "08": [\n    {"inject_time": }\n  ]\n}')
    with pytest.raises(InputError) as info:
        nezha.cases(tmp_path)
    assert (info.value.path, info.value.line) == (str(path), 3)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{"inject_pod": "a-b-c", "inject_type": "return"}', "inject_time"),
        (
            '{"inject_time": "08:43", "inject_pod": "a-b-c", "inject_type": "return"}',
            "YYYY-MM-DD",
        ),
    ],
)
def test_bad_fault_entries_are_input_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = _fake_day(tmp_path, f'{{"08": [{entry}]}}')
    with pytest.raises(InputError, match=message) as info:
        nezha.cases(tmp_path)
    assert info.value.path == str(path)


def test_fake_day_without_slot_files_has_only_metrics(tmp_path: Path) -> None:
    entry = '{"inject_time": "2030-01-01 08:43:04", "inject_pod": "ts-a-service-5dc8d4f9fd-46997",'
    _fake_day(tmp_path, f'{{"08": [{entry} "inject_type": "return"}}]}}')
    (case,) = nezha.cases(tmp_path)
    assert (case.system, case.service, case.baseline) == ("TT", "ts-a-service", None)
    assert case.modalities == [Modality.METRICS]


def test_dependency_graph_of_ob(nezha_root: Path) -> None:
    graph = nezha.dependency_graph(nezha_root, "2022-08-22")
    assert graph.has_edge("frontend", "checkoutservice")
    assert nezha.dependency_graph(nezha_root, "2023-01-29").number_of_edges() == 0
