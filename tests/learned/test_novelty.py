"""T3's "unknown" for a fault type it was not trained on (the nearest-neighbour novelty test)."""

from __future__ import annotations

import numpy as np

from tools.learned.classifier import N_CASE, N_FEATURES, ClassifierExample
from tools.learned.classifier_train import train_classifier


def _example(label: str, centre: np.ndarray, rng: np.random.Generator) -> ClassifierExample:
    case = (centre + rng.normal(0, 0.5, N_CASE)).astype(np.float32)
    feats = rng.normal(0, 1, (3, N_FEATURES)).astype(np.float32)
    return ClassifierExample(feats, np.eye(3, dtype=np.float32), 0, label, case)


def test_a_case_unlike_every_training_case_is_novel_and_a_known_one_is_not() -> None:
    rng = np.random.default_rng(0)
    cpu, mem = np.zeros(N_CASE), np.zeros(N_CASE)
    cpu[0], mem[1] = 8.0, 8.0
    examples = [_example("cpu", cpu, rng) for _ in range(8)]
    examples += [_example("mem", mem, rng) for _ in range(8)]
    model = train_classifier(examples, epochs=1)
    known = _example("cpu", cpu, rng).case
    foreign = np.zeros(N_CASE)
    foreign[5] = 8.0  # a family no training case ever moved (say, cut log lines)
    assert model.novelty(known) <= 1.0
    assert model.novelty(foreign.astype(np.float32)) > 1.0
