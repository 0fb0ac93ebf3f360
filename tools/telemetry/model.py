"""The telemetry data model: rows at API boundaries (pydantic) and the columnar schemas in bulk.

Why two forms: a pydantic object per span cannot reach a million spans per second, so bulk data
moves as ``pyarrow.Table`` with the fixed schemas below (every parser, store and backend produces
exactly these columns), while single rows that cross an API boundary (a tool result, a report, a
labelled case) are validated pydantic models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyarrow as pa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# ---------------------------------------------------------------------------------------------
# Columnar schemas (the contract between parsers, the store, backends and tools)
# ---------------------------------------------------------------------------------------------

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_id", pa.string()),  # null for a root span
        ("service", pa.string()),
        ("pod", pa.string()),  # null when unknown
        ("operation", pa.string()),
        ("kind", pa.string()),  # server/client/internal/producer/consumer or null
        ("start_ns", pa.int64()),  # epoch ns, UTC
        ("end_ns", pa.int64()),  # epoch ns, UTC; null for a span that never ended
        ("duration_ns", pa.int64()),
        ("status", pa.string()),  # "ok" | "error" | "unset"
        ("error_code", pa.string()),  # http status / grpc code / app error code, or null
        ("attributes", pa.string()),  # JSON object text, or null
    ]
)

LOG_SCHEMA = pa.schema(
    [
        ("ts_ns", pa.int64()),
        ("service", pa.string()),
        ("pod", pa.string()),
        ("severity", pa.string()),  # upper-case level name or null
        ("body", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("attributes", pa.string()),  # JSON object text, or null
    ]
)

METRIC_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("service", pa.string()),  # derived from labels (service/job/pod) or null
        ("pod", pa.string()),
        ("labels", pa.string()),  # canonical JSON object text, sorted keys
        ("ts_ns", pa.int64()),
        ("value", pa.float64()),
    ]
)


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


# ---------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------

# Kubernetes Deployment pods: <name>-<replicaset hash>-<5 char suffix>.
_POD_RE = re.compile(r"^(?P<svc>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")
# StatefulSet pods: <name>-<ordinal>.
_STS_RE = re.compile(r"^(?P<svc>.+)-\d+$")


def service_from_pod(pod: str) -> str:
    """The service a pod belongs to: the pod name minus its ReplicaSet hash and suffix.

    ``frontend-579b9bff58-t2dbm`` -> ``frontend``; a name that does not look like a generated pod
    name is returned unchanged (it already is a service or container name).
    """
    m = _POD_RE.match(pod)
    if m:
        return m.group("svc")
    m = _STS_RE.match(pod)
    if m:
        return m.group("svc")
    return pod


class EntityKind(StrEnum):
    SERVICE = "service"
    POD = "pod"
    NODE = "node"
    OPERATION = "operation"


class Entity(BaseModel):
    """Something a root cause can be: a service, a pod, a node or an operation of a service."""

    model_config = ConfigDict(frozen=True)

    kind: EntityKind
    name: str
    service: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def pod(cls, pod: str) -> Entity:
        return cls(kind=EntityKind.POD, name=pod, service=service_from_pod(pod))


# ---------------------------------------------------------------------------------------------
# Rows (API boundaries)
# ---------------------------------------------------------------------------------------------


class SpanStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    UNSET = "unset"


class Span(BaseModel):
    trace_id: str
    span_id: str
    parent_id: str | None = None
    service: str
    pod: str | None = None
    operation: str
    kind: str | None = None
    start_ns: int
    end_ns: int | None = None
    status: SpanStatus = SpanStatus.UNSET
    error_code: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def duration_ns(self) -> int | None:
        return None if self.end_ns is None else self.end_ns - self.start_ns


class LogRecord(BaseModel):
    ts_ns: int
    service: str | None = None
    pod: str | None = None
    severity: str | None = None
    body: str
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class MetricSample(BaseModel):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    ts_ns: int
    value: float


class MetricSeries(BaseModel):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    points: list[tuple[int, float]] = Field(default_factory=list)  # (ts_ns, value)


# ---------------------------------------------------------------------------------------------
# Windows, incidents, labelled cases
# ---------------------------------------------------------------------------------------------


def to_ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class TimeWindow(BaseModel):
    """A half-open UTC interval [start, end). Every analysis is bounded by one."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after start {self.start}")
        return self

    @property
    def start_ns(self) -> int:
        return to_ns(self.start)

    @property
    def end_ns(self) -> int:
        return to_ns(self.end)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @classmethod
    def around(cls, t: datetime, before: timedelta, after: timedelta) -> TimeWindow:
        return cls(start=t - before, end=t + after)

    @classmethod
    def from_ns(cls, start_ns: int, end_ns: int) -> TimeWindow:
        return cls(start=from_ns(start_ns), end=from_ns(end_ns))


class Incident(BaseModel):
    """What an investigation is about: a window and, optionally, narrower scope."""

    window: TimeWindow
    services: list[str] = Field(default_factory=list)
    trace_id: str | None = None
    task_id: str | None = None
    system: str | None = None
    question: str | None = None
    baseline: TimeWindow | None = None  # a fault-free window to compare with, when known


class Modality(StrEnum):
    METRICS = "metrics"
    TRACES = "traces"
    LOGS = "logs"


class LabelledCase(BaseModel):
    """One labelled fault of a dataset: the truth the evaluation harness scores against."""

    case_id: str
    dataset: str  # "nezha" | "sockshop-rcd"
    system: str  # "OB" | "TT" | "SockShop"
    service: str  # root-cause service, as the dataset README defines it
    fault_type: str
    injected_at: AwareDatetime | None  # None where the dataset has no injection time
    window: TimeWindow  # abnormal window to analyse
    baseline: TimeWindow | None = None  # a fault-free window of the same system
    pod: str | None = None
    modalities: list[Modality] = Field(default_factory=list)  # what the files have for this case


class CaseTelemetry(BaseModel):
    """Bulk telemetry of one case, abnormal and fault-free parts, in the columnar schemas."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    case: LabelledCase
    spans: pa.Table = Field(default_factory=lambda: empty_table(SPAN_SCHEMA))
    logs: pa.Table = Field(default_factory=lambda: empty_table(LOG_SCHEMA))
    metrics: pa.Table = Field(default_factory=lambda: empty_table(METRIC_SCHEMA))
    baseline_spans: pa.Table = Field(default_factory=lambda: empty_table(SPAN_SCHEMA))
    baseline_logs: pa.Table = Field(default_factory=lambda: empty_table(LOG_SCHEMA))
    baseline_metrics: pa.Table = Field(default_factory=lambda: empty_table(METRIC_SCHEMA))

    @property
    def modalities(self) -> list[Modality]:
        present = []
        if self.metrics.num_rows:
            present.append(Modality.METRICS)
        if self.spans.num_rows:
            present.append(Modality.TRACES)
        if self.logs.num_rows:
            present.append(Modality.LOGS)
        return present
