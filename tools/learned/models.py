"""The trained T1/T2/T3 bundle: where it lives, how it is saved, and how it is loaded safely.

Why one bundle: the three tools are trained together (T2 learns on T1's output, T3 on T2's) and
must be used together; a models directory holds ``t1_diffusion.pt``, ``t2_localizer.pt`` and
``t3_classifier.pt``, each verified on load (see :mod:`tools.learned.checkpoint`). A missing
directory is not an error: the tools then run their untrained, label-free paths and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.core.settings import get_settings
from tools.learned.checkpoint import load_checkpoint, save_checkpoint
from tools.learned.classifier import ClassifierConfig, FaultTypeClassifier
from tools.learned.diffusion import DiffusionConfig, DiffusionNet
from tools.learned.localize import FrequencyAttention, LocalizerConfig
from tools.learned.ranker import RankerConfig, RootCauseRanker

FILES = {
    "diffusion": "t1_diffusion.pt",
    "localizer": "t2_localizer.pt",
    "classifier": "t3_classifier.pt",
    "ranker": "t2_ranker.pt",
}


@dataclass
class LearnedModels:
    diffusion: DiffusionNet | None = None
    localizer: FrequencyAttention | None = None
    classifier: FaultTypeClassifier | None = None
    ranker: RootCauseRanker | None = None  # learned ranking + calibrated confidence (labels)
    dataset: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def trained(self) -> bool:
        return any(getattr(self, k) is not None for k in FILES)

    def describe(self) -> str:
        if not self.trained:
            return "untrained (robust z-scores, call topology, no fault-type classifier)"
        parts = [k for k in FILES if getattr(self, k) is not None]
        return (
            f"{', '.join(parts)} trained on {self.dataset.get('name')} {self.dataset.get('parts')}"
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for kind, name in FILES.items():
            model = getattr(self, kind)
            if model is None:
                continue
            save_checkpoint(
                directory / name,
                kind,
                model.state_dict(),
                model.config.to_dict(),
                self.dataset,
            )


def default_models_dir() -> Path:
    s = get_settings()
    return s.models_dir if s.models_dir is not None else s.data_dir / "models"


def load_models(directory: Path | None = None, dataset: str | None = None) -> LearnedModels:
    """Load the bundle from ``directory`` (default: settings' models dir).

    Files that are absent leave that tool untrained; a file that is present but corrupt, from
    another code version or (when ``dataset`` is given) from another dataset raises
    :class:`~tools.core.errors.CheckpointError`.
    """
    root = directory if directory is not None else default_models_dir()
    models = LearnedModels(source=root)
    if not root.is_dir():
        return models
    for kind, name in FILES.items():
        path = root / name
        if not path.exists():
            continue
        payload = load_checkpoint(path, kind, dataset)
        config, state = payload["config"], dict(payload["state_dict"])
        setattr(models, kind, _BUILDERS[kind](config, state))
        models.dataset = payload["dataset"]
    return models


_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], Any]] = {
    "diffusion": lambda cfg, w: DiffusionNet(DiffusionConfig(**cfg), w),
    "localizer": lambda cfg, w: FrequencyAttention(LocalizerConfig(**cfg), w),
    "classifier": lambda cfg, w: FaultTypeClassifier(ClassifierConfig(**cfg), w),
    "ranker": lambda cfg, w: RootCauseRanker(RankerConfig(**cfg), w),
}
