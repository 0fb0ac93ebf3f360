"""What the engine may see of an incident, and nothing else.

Why a type of its own: the labelled datasets carry the truth (root-cause service, pod, fault type,
injection time, case id) next to the telemetry, and one attribute read in the wrong place would
let the label leak into alignment, T1-T3, the agent or a prompt. The engine's input has no field
for any of them; the only way in from a labelled case is :meth:`IncidentTelemetry.of_case`, which
reads the window, the fault-free baseline and the tables, and takes the alert time as an explicit
argument (the evaluation protocol decides whether there is one).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tools.telemetry.model import CaseTelemetry, TimeWindow


@dataclass(frozen=True)
class IncidentTelemetry:
    """An incident window's telemetry with its fault-free baseline, as an SRE would have it."""

    window: TimeWindow
    spans: pa.Table
    logs: pa.Table
    metrics: pa.Table
    baseline_spans: pa.Table
    baseline_logs: pa.Table
    baseline_metrics: pa.Table
    alert_ns: int | None = None  # when an alert fired; None: the onset is detected
    system: str | None = None  # which deployment (an SRE knows it); never a root-cause prior
    source: str | None = None  # where the data came from, for error messages only

    @classmethod
    def of_case(cls, ct: CaseTelemetry, alert_ns: int | None = None) -> IncidentTelemetry:
        """The unlabelled part of a dataset case: window, tables and the given alert time."""
        return cls(
            window=ct.case.window,
            spans=ct.spans,
            logs=ct.logs,
            metrics=ct.metrics,
            baseline_spans=ct.baseline_spans,
            baseline_logs=ct.baseline_logs,
            baseline_metrics=ct.baseline_metrics,
            alert_ns=alert_ns,
        )
