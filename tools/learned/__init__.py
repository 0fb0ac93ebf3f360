"""Learned RCA tools of the TAMO design: alignment, T1 fusion, T2 localization, T3 fault type."""

from __future__ import annotations

from tools.learned.aligned import AlignedTelemetry, align, align_case
from tools.learned.api import classify_fault, fuse_modalities, localize_root_cause
from tools.learned.fusion import FusedTelemetry
from tools.learned.models import LearnedModels, load_models

__all__ = [
    "AlignedTelemetry",
    "FusedTelemetry",
    "LearnedModels",
    "align",
    "align_case",
    "classify_fault",
    "fuse_modalities",
    "load_models",
    "localize_root_cause",
]
