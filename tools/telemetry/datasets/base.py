"""The dataset-adapter contract shared by every labelled dataset.

Why a protocol: the evaluation harness, the demo, the store benchmark and ``tamo cases`` read
any labelled dataset the same way -- list the cases, load one case's abnormal and fault-free
telemetry, or stream every file of a day/run for bulk ingest -- without knowing its layout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa

from tools.core.errors import DatasetError
from tools.telemetry.model import CaseTelemetry, LabelledCase


@runtime_checkable
class DatasetAdapter(Protocol):
    """One labelled dataset on disk (``root`` is the dataset folder, e.g. ``.../nezha``)."""

    name: str

    def parts(self, root: Path) -> list[str]:
        """The parts present under ``root`` (Nezha days, Sock Shop run numbers), sorted."""
        ...

    def cases(self, root: Path, parts: list[str] | None = None) -> list[LabelledCase]:
        """Labelled cases of ``parts`` (None = every part present), in a stable order."""
        ...

    def load_case(self, root: Path, case: LabelledCase) -> CaseTelemetry:
        """The case's abnormal-window telemetry plus its fault-free ``baseline_*`` tables."""
        ...

    def iter_telemetry(
        self, root: Path, parts: list[str] | None = None, kinds: Collection[str] | None = None
    ) -> Iterator[tuple[str, str, pa.Table]]:
        """``(kind, source_id, table)`` for every telemetry file of ``parts``; ``kind`` is
        ``spans``/``logs``/``metrics`` and ``source_id`` the file path (stable across calls, so
        a store re-ingesting it replaces rather than duplicates). ``kinds`` limits what is read
        (None = all), e.g. ``["metrics"]`` to backfill Prometheus without parsing spans."""
        ...


KINDS = ("spans", "logs", "metrics")


def check_kinds(kinds: Collection[str] | None) -> frozenset[str]:
    """``kinds`` as a set (None = all); an unknown kind is a :class:`DatasetError`."""
    if kinds is None:
        return frozenset(KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise DatasetError(f"unknown telemetry kind(s) {sorted(unknown)} (known: {KINDS})")
    return frozenset(kinds)
