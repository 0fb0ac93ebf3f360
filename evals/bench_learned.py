"""Benchmark: diagnosis time per case, raw case files -> ranking + fault type, next to BARO.

Why these numbers: the issue's budget is a median of at most 1 s per case on 2 cores with model
loading excluded. The bundle is trained once up front (not timed) on the benchmarked cases; each
timed diagnosis reads the case's files through the dataset adapter, aligns, fuses (T1), localizes
(T2) and classifies (T3). The BARO-style baseline is timed the same way, from the same files.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from evals.baselines import baro_rank
from tools.learned.aligned import align_case
from tools.learned.api import classify_fault, fuse_modalities, localize_root_cause
from tools.learned.labelled_cases import dataset_signature
from tools.learned.train import Epochs, TrainingCase, train_models
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import LabelledCase

MAX_CASES_PER_SYSTEM = 8


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()}"


def _bench_dataset(dataset: str, root: Path) -> list[dict[str, Any]]:
    adapter = get_adapter(dataset)
    picked: dict[str, list[LabelledCase]] = {}
    for case in adapter.cases(root):
        picked.setdefault(case.system, []).append(case)
    rows = []
    for system, all_cases in sorted(picked.items()):
        cases = all_cases[:MAX_CASES_PER_SYSTEM]
        aligned = [align_case(adapter.load_case(root, c)) for c in cases]
        models = train_models(
            [TrainingCase(a, c) for c, a in zip(cases, aligned, strict=True)],
            dataset_signature(dataset, None, cases),
            epochs=Epochs(diffusion=5, localizer=3, classifier=10),
        )
        tamo_s, baro_s = [], []
        for case in cases:
            t0 = time.perf_counter()
            fused = fuse_modalities(align_case(adapter.load_case(root, case)), models)
            ranking = localize_root_cause(fused, models=models)
            classify_fault(fused, ranking, models)
            tamo_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            baro_rank(adapter.load_case(root, case))
            baro_s.append(time.perf_counter() - t0)
        for method, secs in (("tamo", tamo_s), ("baro", baro_s)):
            rows.append(
                {
                    "benchmark": "learned.diagnosis",
                    "metric": f"{dataset}/{system} {method} seconds per case",
                    "median": round(statistics.median(secs), 4),
                    "unit": "s",
                    "runs": len(secs),
                    "machine": _machine(),
                }
            )
    return rows


def run(datasets: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dataset in ("nezha", "sockshop-rcd"):
        root = datasets / dataset
        if root.is_dir():
            rows.extend(_bench_dataset(dataset, root))
    return rows
