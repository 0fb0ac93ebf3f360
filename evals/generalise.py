"""The generalisation evaluation: ranker, calibration and T3 scored on leave-one-out folds.

Why separate from :mod:`evals.harness`: the harness diagnoses one dataset as ``tamo eval`` does;
this module pools every system's cases so the labelled parts can be trained across systems and
scored on a fault type, a block of time or a system they never saw (:mod:`evals.protocols`).
Per case and seed the label-free work (T1 residual, T2 attention and walk, ranker features) is
done once; every fold then only fits the small models, so many folds and ablations stay cheap.

Variants (the ablation): ``ranker`` (what ships: the hand-set rule's score, with a learned
temperature and calibrator), ``ranker -T1`` (the same on robust z, no diffusion), ``ranker all
features`` (hand-set score + every learned feature), ``... -<group>`` (one group dropped, see
:data:`tools.learned.ranker.FEATURE_GROUPS`), ``ranker learned features only`` (no hand-set
score), ``hand-set`` (the untrained 0.7 own + 0.3 walk rule, no confidence).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evals.calibration import calibration_report
from evals.metrics import fault_type_scores, ranking_scores
from evals.protocols import folds
from tools.learned.aligned import AlignedTelemetry
from tools.learned.classifier import UNKNOWN, classify, example
from tools.learned.classifier_train import train_classifier
from tools.learned.fusion import FusedTelemetry, fuse
from tools.learned.localize import localize, ranker_features
from tools.learned.models import LearnedModels
from tools.learned.ranker import (
    DEFAULT_FEATURES,
    FEATURE_GROUPS,
    FEATURES,
    HAND,
    RankerCase,
    RankerConfig,
    fit_ranker,
)
from tools.telemetry.model import LabelledCase

ALL = list(FEATURES)
VARIANTS: dict[str, list[str] | None] = {
    "ranker": list(DEFAULT_FEATURES),
    "ranker -T1": list(DEFAULT_FEATURES),
    "ranker all features": ALL,
    **{
        f"ranker all features -{g}": [f for f in ALL if f not in names]
        for g, names in FEATURE_GROUPS.items()
    },
    "ranker learned features only": [f for f in ALL if f not in HAND],
    "hand-set": None,
}


@dataclass
class Scored:
    """One case, one protocol, one seed: what every fold needs, computed once."""

    case: LabelledCase
    entities: list[str]
    features: np.ndarray  # [E, F] on T1's residual
    features_raw: np.ndarray  # [E, F] on robust z (no diffusion)
    hand: np.ndarray  # [E] hand-set score
    fused: FusedTelemetry
    seconds: float  # fuse + features (the diagnosis after alignment)
    change_found: bool = True
    onset_detected: bool = False
    onset_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> int | None:
        return (
            self.entities.index(self.case.service) if self.case.service in self.entities else None
        )


def score_case(case: LabelledCase, aligned: AlignedTelemetry, models: LearnedModels) -> Scored:
    """The label-free part of a diagnosis (T1, T2 attention + walk, ranker features)."""
    t0 = time.perf_counter()
    fused = fuse(aligned, models.diffusion)
    feats, hand, _, _ = ranker_features(fused, models.localizer)
    seconds = time.perf_counter() - t0
    raw = ranker_features(fuse(aligned, None), models.localizer)[0]
    cp = aligned.change_point
    return Scored(
        case,
        fused.entities,
        feats,
        raw,
        hand,
        fused,
        seconds,
        change_found=cp is None or cp.found,
        onset_detected=cp is not None,
        onset_s=aligned.onset_bin * aligned.step_s,
    )


def _order(scores: np.ndarray, entities: list[str]) -> list[str]:
    return [entities[i] for i in np.argsort(-scores, kind="stable")]


def run_variant(
    scored: list[Scored], protocol: str, variant: str, seed: int
) -> list[dict[str, Any]]:
    """Per test case of every fold: ranking, confidence; ``hand-set`` needs no training."""
    cases = [s.case for s in scored]
    columns = VARIANTS[variant]
    out: list[dict[str, Any]] = []
    for proto, system, test, train in folds(cases, protocol):
        ranker = None
        if columns is not None:
            use_raw = variant == "ranker -T1"
            examples = [
                RankerCase(scored[i].features_raw if use_raw else scored[i].features, r)
                for i in train
                for r in [scored[i].root]
                if r is not None
            ]
            ranker = fit_ranker(examples, RankerConfig(features=columns), seed=seed)
        for i in test:
            s = scored[i]
            t0 = time.perf_counter()
            if ranker is None:
                probs, conf = s.hand, None
            else:
                probs = ranker.probabilities(
                    s.features_raw if variant == "ranker -T1" else s.features
                )
                conf = ranker.confidence(probs)
            ranking = _order(probs, s.entities) if s.change_found else []
            if not s.change_found and conf is not None:
                conf = 0.0
            out.append(
                {
                    "case_id": s.case.case_id,
                    "system": system,
                    "fold": proto,
                    "truth": s.case.service,
                    "ranking": ranking[:5],
                    "confidence": None if conf is None else round(float(conf), 4),
                    "onset_detected": s.onset_detected,
                    "change_point": s.change_found,
                    "seconds": s.seconds + time.perf_counter() - t0,
                    "_ranker": ranker,
                    "_index": i,
                }
            )
    return out


def classify_folds(
    scored: list[Scored], protocol: str, ranked: list[dict[str, Any]], seed: int, epochs: int
) -> dict[str, str]:
    """T3 per fold, trained on the fold's training cases *of the test system* (fault-type names
    are per system); returns case_id -> predicted type (or "unknown")."""
    cases = [s.case for s in scored]
    by_case = {r["_index"]: r for r in ranked}
    preds: dict[str, str] = {}
    for _, system, test, train in folds(cases, protocol):
        ranker = by_case[test[0]]["_ranker"] if test else None
        train = [i for i in train if cases[i].system == system]
        examples = []
        for i in train:
            s = scored[i]
            r = localize(s.fused, None, ranker=ranker)
            ex = example(s.fused, r, s.case.service, s.case.fault_type)
            if ex is not None:
                examples.append(ex)
        if len({e.label for e in examples}) < 2:
            for i in test:
                preds[cases[i].case_id] = UNKNOWN
            continue
        model = train_classifier(examples, epochs=epochs, seed=seed)
        for i in test:
            s = scored[i]
            preds[cases[i].case_id] = classify(
                s.fused, localize(s.fused, None, ranker=ranker), model
            ).fault_type
    return preds


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per system: Acc@k, calibration (ECE, reliability, Acc@1 among confidence >= 0.8)."""
    out: dict[str, Any] = {}
    for system in sorted({r["system"] for r in rows}):
        mine = [r for r in rows if r["system"] == system]
        res = ranking_scores([r["truth"] for r in mine], [r["ranking"] for r in mine])
        secs = sorted(r["seconds"] for r in mine)
        res["seconds_per_case"] = round(secs[len(secs) // 2], 4)
        res["cases"] = len(mine)
        res["no_change_point"] = sum(not r["change_point"] for r in mine)
        conf = [r["confidence"] for r in mine]
        if all(c is not None for c in conf):
            right = [bool(r["ranking"]) and r["ranking"][0] == r["truth"] for r in mine]
            res["calibration"] = calibration_report(conf, right)
        if "fault_type_pred" in mine[0]:
            truths = [r["fault_type_truth"] for r in mine]
            preds = [r["fault_type_pred"] for r in mine]
            res["fault_type"] = fault_type_scores(truths, preds)
            res["unknown_rate"] = round(sum(p == UNKNOWN for p in preds) / len(preds), 4)
        out[system] = res
    return out


def clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without the in-memory helpers, for the JSON."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
