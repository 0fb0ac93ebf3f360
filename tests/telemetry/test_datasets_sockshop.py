"""RCD Sock Shop adapter on the real data (data card section 2)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tools.core.errors import DatasetError
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import METRIC_SCHEMA, Modality

sockshop = get_adapter("sockshop-rcd")


def test_thirty_cases_as_the_data_card_says(sockshop_root: Path) -> None:
    cases = sockshop.cases(sockshop_root)
    assert len(cases) == 30
    assert Counter(c.service for c in cases) == dict.fromkeys(
        ["carts", "catalogue", "orders", "payment", "user"], 6
    )
    assert Counter(c.fault_type for c in cases) == {"cpu": 15, "mem": 15}
    assert all(c.injected_at is None and c.system == "SockShop" for c in cases)
    assert all(c.modalities == [Modality.METRICS] for c in cases)


def test_window_is_the_anomalous_file_and_baseline_the_normal_one(sockshop_root: Path) -> None:
    (case,) = [c for c in sockshop.cases(sockshop_root, ["1"]) if c.case_id == "carts-cpu/1"]
    assert case.window.start_ns == 1652812675 * 10**9
    ct = sockshop.load_case(sockshop_root, case)
    assert ct.metrics.schema == METRIC_SCHEMA
    ts = ct.metrics["ts_ns"]
    assert pc.min(ts).as_py() == case.window.start_ns
    assert pc.max(ts).as_py() < case.window.end_ns
    assert case.baseline is not None
    assert pc.max(ct.baseline_metrics["ts_ns"]).as_py() < case.baseline.end_ns
    cpu = ct.metrics.filter(pc.equal(ct.metrics["name"], "container_cpu_usage_percent"))
    carts = cpu.filter(pc.equal(cpu["service"], "carts"))
    assert carts["value"][0].as_py() == pytest.approx(100.06266460914617)
    # carts-db is an entity of its own, not part of carts
    assert "carts-db" in set(cpu["service"].to_pylist())
    names = set(ct.metrics["name"].to_pylist())
    assert names == {
        "container_cpu_usage_percent",
        "container_memory_usage_bytes",
        "service_request_rate_per_second",
        "service_latency_p50_seconds",
        "service_latency_p90_seconds",
        "service_latency_p99_seconds",
    }
    # 38 value columns x rows, no NaN in this data
    assert ct.metrics.num_rows % 38 == 0


def test_iter_telemetry_yields_both_files_of_each_run(sockshop_root: Path) -> None:
    items = list(sockshop.iter_telemetry(sockshop_root, ["3"]))
    assert len(items) == 20
    names = {Path(s).name.removesuffix(".gz") for _, s, _ in items}
    assert names == {"normal.csv", "anomalous.csv"}
    assert all(kind == "metrics" and t.schema == METRIC_SCHEMA for kind, _, t in items)
    assert list(sockshop.iter_telemetry(sockshop_root, ["3"], kinds=["spans"])) == []


def test_unknown_run_is_a_dataset_error(sockshop_root: Path) -> None:
    with pytest.raises(DatasetError, match="'9'"):
        sockshop.cases(sockshop_root, ["9"])


def test_missing_file_names_its_path(tmp_path: Path) -> None:
    (tmp_path / "sock-shop-data" / "carts-cpu" / "1").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"carts-cpu/1/anomalous\.csv"):
        sockshop.cases(tmp_path)
