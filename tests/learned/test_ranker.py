from __future__ import annotations

import numpy as np

from tools.learned.ranker import FEATURES, RankerCase, RankerConfig, fit_ranker, margin_features


def _cases(n: int, noise: float, seed: int = 0) -> list[RankerCase]:
    """Cases of 6 entities; feature 'own_resource' marks the root, blurred by ``noise``."""
    rng = np.random.default_rng(seed)
    col = FEATURES.index("own_resource")
    out = []
    for _ in range(n):
        f = rng.normal(0, 1, size=(6, len(FEATURES)))
        root = int(rng.integers(6))
        f[root, col] += 4.0
        f[:, col] += rng.normal(0, noise, size=6)
        out.append(RankerCase(f, root))
    return out


def test_the_ranker_learns_which_feature_marks_the_root() -> None:
    cfg = RankerConfig(features=list(FEATURES), l2=1.0)
    model = fit_ranker(_cases(60, 0.5), cfg)
    test = _cases(40, 0.5, seed=1)
    hits = np.mean([np.argmax(model.probabilities(c.features)) == c.root for c in test])
    assert hits >= 0.8
    w = model.weight
    assert np.argmax(w) == FEATURES.index("own_resource")


def test_confidence_is_calibrated_out_of_fold() -> None:
    """On hard cases (~half right) the calibrated confidence tracks the hit rate; the raw
    softmax does not have to."""
    cfg = RankerConfig(features=list(FEATURES), l2=1.0)
    model = fit_ranker(_cases(120, 2.5), cfg)
    test = _cases(200, 2.5, seed=2)
    conf, right = [], []
    for c in test:
        p = model.probabilities(c.features)
        conf.append(model.confidence(p))
        right.append(np.argmax(p) == c.root)
    assert all(0.0 <= x <= 1.0 for x in conf)
    assert abs(np.mean(conf) - np.mean(right)) < 0.1
    # more margin, more confidence
    assert model.platt[1:].sum() > 0


def test_margin_features_of_a_sure_and_an_unsure_ranking() -> None:
    sure, unsure = margin_features(np.array([0.9, 0.05, 0.05])), margin_features(np.ones(3) / 3)
    assert sure[0] > unsure[0] and sure[1] > unsure[1] == 0.0
