"""The telemetry model: pod -> service derivation, windows, schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    SPAN_SCHEMA,
    CaseTelemetry,
    LabelledCase,
    Modality,
    TimeWindow,
    from_ns,
    service_from_pod,
    to_ns,
)


@pytest.mark.parametrize(
    ("pod", "service"),
    [
        ("frontend-579b9bff58-t2dbm", "frontend"),
        ("ts-contacts-service-866bd68c97-xcqfx", "ts-contacts-service"),
        ("adservice-5f6585d649-fnmft", "adservice"),
        ("redis-cart-0", "redis-cart"),
        ("frontend", "frontend"),
        ("carts-db", "carts-db"),
    ],
)
def test_service_from_pod(pod: str, service: str) -> None:
    assert service_from_pod(pod) == service


name = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z][a-z0-9]{0,8}){0,3}", fullmatch=True)
rs_hash = st.from_regex(r"[a-z0-9]{8,10}", fullmatch=True)
suffix = st.from_regex(r"[a-z0-9]{5}", fullmatch=True)


@given(name, rs_hash, suffix)
def test_deployment_pod_names_map_back_to_their_service(svc: str, h: str, s: str) -> None:
    assert service_from_pod(f"{svc}-{h}-{s}") == svc


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_ns_round_trip_keeps_microseconds(t: datetime) -> None:
    aware = t.replace(tzinfo=UTC)
    assert from_ns(to_ns(aware)) == aware


def test_window_must_be_ordered() -> None:
    t = datetime(2023, 1, 29, 8, 43, tzinfo=UTC)
    with pytest.raises(ValidationError, match="not after start"):
        TimeWindow(start=t, end=t)
    w = TimeWindow.around(t, timedelta(minutes=1), timedelta(minutes=2))
    assert w.seconds == 180
    assert w.end_ns - w.start_ns == 180 * 10**9


def test_window_rejects_naive_times() -> None:
    with pytest.raises(ValidationError):
        TimeWindow(start=datetime(2023, 1, 1), end=datetime(2023, 1, 2))


def test_case_telemetry_reports_only_modalities_with_rows() -> None:
    t = datetime(2023, 1, 29, 8, 43, tzinfo=UTC)
    case = LabelledCase(
        case_id="c",
        dataset="nezha",
        system="TT",
        service="ts-basic-service",
        fault_type="exception",
        injected_at=t,
        window=TimeWindow.around(t, timedelta(minutes=1), timedelta(minutes=2)),
    )
    ct = CaseTelemetry(case=case)
    assert ct.modalities == []
    row = {f.name: None for f in METRIC_SCHEMA}
    row.update(name="cpu", labels="{}", ts_ns=1, value=1.0)
    import pyarrow as pa

    ct = CaseTelemetry(case=case, metrics=pa.Table.from_pylist([row], schema=METRIC_SCHEMA))
    assert ct.modalities == [Modality.METRICS]


def test_schemas_have_the_columns_tools_rely_on() -> None:
    assert {"trace_id", "span_id", "parent_id", "service", "start_ns", "duration_ns"} <= set(
        SPAN_SCHEMA.names
    )
    assert {"ts_ns", "service", "body", "trace_id"} <= set(LOG_SCHEMA.names)
    assert {"name", "labels", "ts_ns", "value"} <= set(METRIC_SCHEMA.names)
