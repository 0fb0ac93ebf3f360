"""The engine never reads a label: cases whose label fields raise on access still diagnose."""

from __future__ import annotations

from typing import Any

import pytest

from tests.learned.conftest import make_case
from tools.learned import align_case, classify_fault, fuse_modalities, localize_root_cause
from tools.learned.incident import IncidentTelemetry
from tools.learned.labelled_cases import alert_time
from tools.telemetry.model import CaseTelemetry, to_ns

LABEL_FIELDS = ("case_id", "service", "fault_type", "pod", "injected_at", "system", "dataset")


class LabelRead(AssertionError):
    pass


class PoisonedCase:
    """A case whose window is readable and whose every label field raises."""

    def __init__(self, window: Any, baseline: Any) -> None:
        self.window = window
        self.baseline = baseline

    def __getattr__(self, name: str) -> Any:
        raise LabelRead(f"the engine read the label field {name!r}")


def _poisoned() -> CaseTelemetry:
    ct = make_case(root="c")
    fields = {k: getattr(ct, k) for k in type(ct).model_fields if k != "case"}
    return CaseTelemetry.model_construct(
        case=PoisonedCase(ct.case.window, ct.case.baseline), **fields
    )


def test_the_engine_input_type_has_no_label_field() -> None:
    names = set(IncidentTelemetry.__dataclass_fields__)
    assert not names & {"case_id", "service", "fault_type", "pod", "injected_at"}


def test_alignment_and_t1_t3_run_without_reading_a_label() -> None:
    ct = _poisoned()
    with pytest.raises(LabelRead):
        _ = ct.case.service  # the poison works
    aligned = align_case(ct)
    fused = fuse_modalities(aligned)
    ranking = localize_root_cause(fused)
    classify_fault(fused, ranking)
    assert ranking.ranking and ranking.onset_detected


def test_only_the_alert_protocol_reads_the_injection_time() -> None:
    ct = make_case()
    assert alert_time(_poisoned().case, "window") is None  # reads nothing
    inj = ct.case.window.start
    labelled = ct.case.model_copy(update={"injected_at": inj})
    assert alert_time(labelled, "alert") == to_ns(inj)
    with pytest.raises(LabelRead):
        alert_time(_poisoned().case, "alert")
