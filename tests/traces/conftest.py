"""Shared fixtures: one small synthetic data set per session (generation is deterministic)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evals.traces_synth import SynthData, generate
from tools.telemetry.model import SPAN_SCHEMA
from tools.traces import TraceConfig


@pytest.fixture(scope="session")
def synth() -> SynthData:
    return generate(1500, seed=2, anomaly_rate=0.06)


@pytest.fixture(scope="session")
def normal() -> SynthData:
    return generate(1000, seed=3, anomaly_rate=0.0)


@pytest.fixture
def fast_config() -> TraceConfig:
    return TraceConfig(ae_epochs=8, seed=0)


def spans(rows: list[dict]) -> pa.Table:
    """A SPAN_SCHEMA table from partial rows (missing columns are null)."""
    full = [{f.name: r.get(f.name) for f in SPAN_SCHEMA} for r in rows]
    return pa.Table.from_pylist(full, schema=SPAN_SCHEMA)


def span(
    tid: str,
    sid: str,
    parent: str | None,
    svc: str,
    start: int,
    end: int | None,
    status: str = "ok",
    op: str = "op",
    attrs: str | None = None,
) -> dict:
    return {
        "trace_id": tid,
        "span_id": sid,
        "parent_id": parent,
        "service": svc,
        "operation": op,
        "start_ns": start,
        "end_ns": end,
        "status": status,
        "attributes": attrs,
    }
