"""Training the bundle: T1 on fault-free windows, T2 self-supervised, T3 on labelled cases.

Why this order: T2 reads T1's fused output and T3 reads T2's ranking and causal graph, so each is
trained on the output of the one before it. T1 and T2's attention never see labels. The ranker
sees which entity was the root cause, but only through system-agnostic features (deviation
families, call-graph position, causal-walk score): nothing that names a service. T3 sees fault
types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tools.learned.aligned import AlignedTelemetry
from tools.learned.classifier import ClassifierExample, example
from tools.learned.classifier_train import train_classifier
from tools.learned.diffusion import DiffusionConfig
from tools.learned.diffusion_train import train_diffusion
from tools.learned.fusion import fuse
from tools.learned.localize import LocalizerConfig, localize, ranker_features
from tools.learned.localize_train import train_localizer
from tools.learned.models import LearnedModels
from tools.learned.ranker import RankerCase, fit_ranker
from tools.telemetry.model import LabelledCase

Progress = Callable[[str, int], None]  # (stage, steps done so far in that stage)


@dataclass
class TrainingCase:
    aligned: AlignedTelemetry
    case: LabelledCase


@dataclass
class Epochs:
    diffusion: int = 30
    localizer: int = 15
    classifier: int = 40


def train_models(
    cases: list[TrainingCase],
    dataset: dict[str, object],
    seed: int = 0,
    epochs: Epochs | None = None,
    progress: Progress | None = None,
    with_classifier: bool = True,
) -> LearnedModels:
    ep = epochs or Epochs()

    def tick(stage: str) -> Callable[[], None]:
        count = [0]

        def f() -> None:
            count[0] += 1
            if progress is not None:
                progress(stage, count[0])

        return f

    diffusion, _ = train_diffusion(
        [c.aligned.baseline_X for c in cases],
        DiffusionConfig(),
        epochs=ep.diffusion,
        seed=seed,
        progress=tick("T1 diffusion"),
    )
    windows = []
    for c in cases:
        windows.append(fuse(c.aligned, diffusion).anomaly)
    localizer, _ = train_localizer(
        windows, LocalizerConfig(), epochs=ep.localizer, seed=seed, progress=tick("T2 attention")
    )
    models = LearnedModels(diffusion=diffusion, localizer=localizer, dataset=dataset)
    if with_classifier:
        models.ranker = fit_ranker(ranker_cases(cases, models), seed=seed)
        examples = classifier_examples(cases, models)
        models.classifier = train_classifier(examples, epochs=ep.classifier, seed=seed)
        if progress is not None:
            progress("T3 classifier", ep.classifier)
    return models


def ranker_cases(cases: list[TrainingCase], models: LearnedModels) -> list[RankerCase]:
    """Ranker examples (features of every entity, index of the root cause); cases whose root
    cause has no telemetry are skipped."""
    out = []
    for c in cases:
        fused = fuse(c.aligned, models.diffusion)
        if c.case.service in fused.entities:
            feats = ranker_features(fused, models.localizer)[0]
            out.append(RankerCase(feats, fused.entities.index(c.case.service)))
    return out


def classifier_examples(
    cases: list[TrainingCase], models: LearnedModels
) -> list[ClassifierExample]:
    """T3 examples from T1+T2 outputs; cases whose root cause has no telemetry are skipped."""
    out = []
    for c in cases:
        fused = fuse(c.aligned, models.diffusion)
        ranking = localize(fused, models.localizer, ranker=models.ranker)
        ex = example(fused, ranking, c.case.service, c.case.fault_type)
        if ex is not None:
            out.append(ex)
    return out
