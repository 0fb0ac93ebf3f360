"""The evaluation harness: every method on the labelled cases of a dataset, scored honestly.

Why it is built this way:
* Each case is diagnosed from its raw files (adapter load + align + fuse + localize + classify)
  and that wall time is the case's ``seconds``; loading and training models is excluded.
* T1 and T2 never see labels. When no models directory is given they are trained here, label-free,
  on the cases' own telemetry, which is what a deployment does on its own history.
* The ranker (with its confidence calibrator) and T3 are the supervised parts. They are scored by
  stratified k-fold cross-validation within each system (a case is never ranked or classified by
  a model that saw its label), or, with ``classifier="models"``, by the ones in the models
  directory (transfer: train on one system, test on another). The leave-one-fault-type-out,
  leave-one-day-out and cross-system protocols are :mod:`evals.generalise` (``make eval``).
* No label reaches the engine: :func:`~tools.learned.labelled_cases.alert_time` is the only
  place a label (the injection time) is read, and only under the ``alert`` protocol, as the
  alert an SRE would have; under ``window`` the engine gets the window alone and detects the
  onset itself.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.model_selection import StratifiedKFold

from evals.baselines import baro_rank, trace_pagerank_rank
from evals.calibration import calibration_report
from evals.metrics import fault_type_scores, ranking_scores
from tools.core.errors import DatasetError, TamoError
from tools.learned.aligned import AlignedTelemetry
from tools.learned.classifier import UNKNOWN, classify, example
from tools.learned.classifier_train import train_classifier
from tools.learned.fusion import FusedTelemetry, fuse
from tools.learned.labelled_cases import (
    PROTOCOLS,
    Loaded,
    Progress,
    dataset_signature,
    load_aligned,
)
from tools.learned.localize import LocalizerConfig, localize, ranker_features
from tools.learned.models import LearnedModels, load_models
from tools.learned.ranker import RankerCase, fit_ranker
from tools.learned.results import RootCauseRanking
from tools.learned.train import Epochs, TrainingCase, train_models
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import CaseTelemetry, LabelledCase, Modality

LEARNED_METHODS = (
    "tamo",
    "no-diffusion",
    "no-freq-attention",
    "no-traces",
    "no-logs",
    "no-metrics",
)
BASELINES: dict[str, Callable[[CaseTelemetry], list[str]]] = {
    "baro": baro_rank,
    "trace-pagerank": trace_pagerank_rank,
}
METHODS = LEARNED_METHODS + tuple(BASELINES)
_DROP = {"no-traces": Modality.TRACES, "no-logs": Modality.LOGS, "no-metrics": Modality.METRICS}


@dataclass
class Diagnosed:
    case: LabelledCase
    seconds: float
    ranking: list[str]
    fused: FusedTelemetry | None = None
    result: RootCauseRanking | None = None
    fault_type_pred: str | None = None
    features: Any = None  # [E, F] ranker features (learned methods)
    config: LocalizerConfig | None = None
    onset_detected: bool = False


def _learned_diagnosis(
    method: str, aligned: AlignedTelemetry, models: LearnedModels
) -> tuple[FusedTelemetry, LocalizerConfig | None]:
    """T1 for ``method`` (an ablation may drop a modality, the diffusion or the attention)."""
    if method in _DROP:
        aligned = aligned.without(_DROP[method])
    fused = fuse(aligned, None if method == "no-diffusion" else models.diffusion)
    config = LocalizerConfig(use_attention=False) if method == "no-freq-attention" else None
    return fused, config


def _localizer(method: str, models: LearnedModels) -> Any:
    return None if method == "no-freq-attention" else models.localizer


def _folds(items: list[Diagnosed], folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    labels = [d.case.fault_type for d in items]
    k = min(folds, len(items), min(labels.count(x) for x in set(labels)))
    if k < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            (list(a), list(b))
            for a, b in StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels)
        ]


def _cross_validate(
    diagnosed: list[Diagnosed],
    method: str,
    models: LearnedModels,
    folds: int,
    seed: int,
    epochs: int,
) -> None:
    """Rank (ranker + calibrated confidence) and classify (T3) every case by stratified k-fold
    CV within each system: a case is never seen by the models that judge it."""
    by_system: dict[str, list[Diagnosed]] = {}
    for d in diagnosed:
        by_system.setdefault(d.case.system, []).append(d)
    for items in by_system.values():
        splits = _folds(items, folds, seed)
        if not splits:
            for d in items:
                _rank(d, method, models, None)
                d.fault_type_pred = UNKNOWN
            continue
        for train_idx, test_idx in splits:
            train = [items[i] for i in train_idx]
            ranker = fit_ranker(
                [
                    RankerCase(d.features, d.fused.entities.index(d.case.service))
                    for d in train
                    if d.fused is not None and d.case.service in d.fused.entities
                ],
                seed=seed,
            )
            for d in train:
                _rank(d, method, models, ranker, timed=False)
            examples = [
                ex
                for d in train
                if d.fused is not None and d.result is not None
                for ex in [example(d.fused, d.result, d.case.service, d.case.fault_type)]
                if ex is not None
            ]
            t3 = train_classifier(examples, epochs=epochs, seed=seed)
            for i in test_idx:
                d = items[i]
                _rank(d, method, models, ranker)
                t0 = time.perf_counter()
                assert d.fused is not None and d.result is not None
                d.fault_type_pred = classify(d.fused, d.result, t3).fault_type
                d.seconds += time.perf_counter() - t0


def _rank(
    d: Diagnosed, method: str, models: LearnedModels, ranker: Any, timed: bool = True
) -> None:
    assert d.fused is not None
    t0 = time.perf_counter()
    d.result = localize(d.fused, _localizer(method, models), d.config, ranker=ranker)
    d.ranking = d.result.services
    if timed:
        d.seconds += time.perf_counter() - t0


def evaluate(
    dataset: str,
    root: Path,
    parts: list[str] | None,
    method: str,
    models_dir: Path | None = None,
    classifier: str = "cv",
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    loaded: Loaded | None = None,
    models: LearnedModels | None = None,
    epochs: Epochs | None = None,
    protocol: str = "alert",
) -> dict[str, Any]:
    """Run ``method`` on the cases of ``parts`` and return the harness JSON (see module doc)."""
    if method not in METHODS:
        raise TamoError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if classifier not in ("cv", "models"):
        raise TamoError(f"unknown classifier mode {classifier!r} (cv or models)")
    if protocol not in PROTOCOLS:
        raise TamoError(f"unknown protocol {protocol!r} (alert or window)")
    diagnosed: list[Diagnosed] = []
    if method in BASELINES:
        adapter = get_adapter(dataset)
        cases = [c for c, _, _, _ in loaded] if loaded is not None else adapter.cases(root, parts)
        if not cases:
            raise DatasetError(f"no labelled cases for parts {parts or 'all'}", source=str(root))
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            ranking = BASELINES[method](adapter.load_case(root, case))
            diagnosed.append(Diagnosed(case, time.perf_counter() - t0, ranking))
            if progress is not None:
                progress(method, i + 1, len(cases))
    else:
        if models is None and models_dir is not None:
            models = load_models(models_dir, dataset)  # refuse a wrong checkpoint before work
        data = (
            loaded if loaded is not None else load_aligned(dataset, root, parts, progress, protocol)
        )
        cases = [c for c, _, _, _ in data]
        if models is None or models.diffusion is None:
            train_cases = [TrainingCase(a, c) for c, _, a, _ in data]
            models = train_models(
                train_cases,
                dataset_signature(dataset, parts, cases),
                seed,
                epochs=epochs,
                with_classifier=False,
            )
        if classifier == "models" and (models.classifier is None or models.ranker is None):
            raise TamoError("classifier='models' needs a trained ranker and T3 in the models dir")
        for i, (case, _, aligned, load_s) in enumerate(data):
            t0 = time.perf_counter()
            fused, config = _learned_diagnosis(method, aligned, models)
            feats = ranker_features(fused, _localizer(method, models), config)[0]
            d = Diagnosed(case, load_s + time.perf_counter() - t0, [], fused, None, None, feats)
            d.config = config
            d.onset_detected = aligned.onset_detected
            if classifier == "models":
                _rank(d, method, models, models.ranker)
                t1 = time.perf_counter()
                assert d.result is not None
                d.fault_type_pred = classify(fused, d.result, models.classifier).fault_type
                d.seconds += time.perf_counter() - t1
            diagnosed.append(d)
            if progress is not None:
                progress(method, i + 1, len(data))
        if classifier == "cv":
            ep = (epochs or Epochs()).classifier
            _cross_validate(diagnosed, method, models, folds, seed, ep)
    return report(dataset, method, diagnosed, protocol)


def report(
    dataset: str, method: str, diagnosed: list[Diagnosed], protocol: str = "alert"
) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for system in sorted({d.case.system for d in diagnosed}):
        items = [d for d in diagnosed if d.case.system == system]
        secs = sorted(d.seconds for d in items)
        conf = [d.result.confidence if d.result is not None else None for d in items]
        systems[system] = {
            "cases": len(items),
            **ranking_scores([d.case.service for d in items], [d.ranking for d in items]),
            "fault_type": fault_type_scores(
                [d.case.fault_type for d in items], [d.fault_type_pred for d in items]
            ),
            "seconds_per_case": round(secs[len(secs) // 2], 4),
        }
        if conf and all(c is not None for c in conf):
            right = [bool(d.ranking) and d.ranking[0] == d.case.service for d in items]
            systems[system]["calibration"] = calibration_report(conf, right)  # type: ignore[arg-type]
    return {
        "dataset": dataset,
        "method": method,
        "protocol": protocol,
        "systems": systems,
        "cases": [
            {
                "case_id": d.case.case_id,
                "system": d.case.system,
                "protocol": protocol,
                "truth": d.case.service,
                "ranking": d.ranking[:5],
                "confidence": d.result.confidence if d.result is not None else None,
                "onset_detected": d.onset_detected,
                "change_point": not (d.result is not None and d.result.note != ""),
                "fault_type_truth": d.case.fault_type,
                "fault_type_pred": d.fault_type_pred,
                "seconds": round(d.seconds, 4),
            }
            for d in diagnosed
        ],
    }
