"""Labelled cases of a dataset, loaded and aligned: what training and evaluation both start from.

Why in the product: ``tamo train`` learns from an operator's own labelled incidents, so loading
them cannot live in ``evals/`` (which is not installed). The evaluation harness reuses the same
loader, and charges each case's load + align time to its diagnosis.

Why :func:`alert_time` is here: it is the one place a label (the injection time) reaches the
engine, and only under the ``alert`` protocol, as the alert an SRE would have had; under
``window`` the engine gets the window alone and detects the onset itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.core.errors import DatasetError, TamoError
from tools.learned.aligned import AlignedTelemetry, align_case
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import CaseTelemetry, LabelledCase, to_ns

PROTOCOLS = ("alert", "window")
Progress = Callable[[str, int, int], None]  # (stage, done, total)
Loaded = list[tuple[LabelledCase, CaseTelemetry, AlignedTelemetry, float]]  # + load seconds


def dataset_signature(
    dataset: str, parts: list[str] | None, cases: list[LabelledCase]
) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on (checked when it loads)."""
    return {"name": dataset, "parts": sorted(parts) if parts else "all", "cases": len(cases)}


def alert_time(case: LabelledCase, protocol: str) -> int | None:
    """The alert time the engine is given: the injection time under ``alert`` (the window start
    where the dataset has none, as in Sock Shop whose files start at the fault), none under
    ``window``."""
    if protocol not in PROTOCOLS:
        raise TamoError(f"unknown protocol {protocol!r} (alert or window)")
    if protocol == "window":
        return None
    return to_ns(case.injected_at) if case.injected_at is not None else case.window.start_ns


def load_aligned(
    dataset: str,
    root: Path,
    parts: list[str] | None,
    progress: Progress | None = None,
    protocol: str = "alert",
) -> Loaded:
    """Load and align every case under ``protocol``, timing both (the first half of a
    diagnosis)."""
    if protocol not in PROTOCOLS:
        raise TamoError(f"unknown protocol {protocol!r} (alert or window)")
    adapter = get_adapter(dataset)
    cases = adapter.cases(root, parts)
    if not cases:
        raise DatasetError(f"no labelled cases for parts {parts or 'all'}", source=str(root))
    out = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        ct = adapter.load_case(root, case)
        aligned = align_case(ct, alert_ns=alert_time(case, protocol))
        out.append((case, ct, aligned, time.perf_counter() - t0))
        if progress is not None:
            progress("load + align", i + 1, len(cases))
    return out
