from __future__ import annotations

import numpy as np
import torch

from tests.learned.conftest import make_case
from tools.learned import align_case, classify_fault, fuse_modalities, localize_root_cause
from tools.learned.classifier import N_FEATURES, ClassifierConfig, case_features, example
from tools.learned.classifier_train import ClassifierModule, train_classifier, weighted_bce
from tools.learned.localize import FrequencyAttention, LocalizerConfig, localize, spectra
from tools.learned.localize_train import AttentionModule, train_localizer
from tools.learned.models import LearnedModels


def test_root_cause_ranks_first_on_each_modality_subset() -> None:
    for root in ("b", "c"):
        for traces, logs in ((True, True), (False, False)):
            fused = fuse_modalities(align_case(make_case(root=root, traces=traces, logs=logs)))
            ranking = localize_root_cause(fused, top_k=3)
            assert ranking.services[0] == root
            assert ranking.ranking[0].score == 1.0
            assert ranking.ranking[0].evidence


def test_attention_is_a_distribution_without_self_loops() -> None:
    fused = fuse_modalities(align_case(make_case()))
    model = FrequencyAttention.untrained(LocalizerConfig())
    att = model.attention(spectra(fused.anomaly))
    assert att.shape == (3, 3)
    assert np.allclose(att.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.diag(att), 0.0)


def test_self_supervised_localizer_training_reduces_its_loss() -> None:
    windows = [fuse_modalities(align_case(make_case(seed=s))).anomaly for s in range(3)]
    _, losses = train_localizer(windows, LocalizerConfig(), epochs=10, seed=0)
    assert losses[-1] < losses[0]


def test_causal_edges_follow_the_call_graph_without_attention() -> None:
    fused = fuse_modalities(align_case(make_case(root="c")))
    ranking = localize_root_cause(fused)
    topo = localize(fused, None, LocalizerConfig(use_attention=False))
    assert {(e.cause, e.effect) for e in topo.causal_edges} <= {("b", "a"), ("c", "b")}
    assert ranking.causal_edges


def test_weighted_bce_matches_the_formula() -> None:
    p = torch.tensor([[0.9, 0.2], [0.3, 0.6]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lam = 3.0
    manual = -(lam * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert torch.isclose(weighted_bce(p, y, lam), manual)


def test_classifier_learns_family_features_and_says_unknown_when_untrained() -> None:
    examples = []
    for seed in range(4):
        for fault in ("cpu", "mem"):
            case = make_case(fault=fault, seed=seed, traces=False, logs=False)
            fused = fuse_modalities(align_case(case))
            ex = example(fused, localize_root_cause(fused), "b", fault)
            assert ex is not None
            examples.append(ex)
    model = train_classifier(examples, epochs=40, seed=0)
    assert model.config.labels == ["cpu", "mem"]
    for fault in ("cpu", "mem"):
        case = make_case(fault=fault, seed=9, traces=False, logs=False)
        fused = fuse_modalities(align_case(case))
        ranking = localize_root_cause(fused)
        pred = classify_fault(fused, ranking, LearnedModels(classifier=model))
        assert pred.fault_type == fault and 0.5 < pred.probability <= 1.0
        # the case-level regression alone also separates the two faults
        alone = model.case_probabilities(case_features(fused, ranking))
        assert model.config.labels[int(alone.argmax())] == fault
        assert np.isclose(alone.sum(), 1.0)
    fused = fuse_modalities(align_case(make_case()))
    none = classify_fault(fused, localize_root_cause(fused))
    assert none.fault_type == "unknown" and none.low_confidence
    shy = ClassifierModule(ClassifierConfig(labels=["x", "y"], min_confidence=1.0)).net()
    low = classify_fault(fused, localize_root_cause(fused), LearnedModels(classifier=shy))
    assert low.fault_type == "unknown" and low.low_confidence


def test_untrained_attention_is_torchs_seeded_initialisation_drawn_without_torch() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = AttentionModule(LocalizerConfig()).eval()
    net = FrequencyAttention.untrained(LocalizerConfig())
    for key, value in module.state_dict().items():
        assert np.array_equal(value.numpy(), net.weights[key]), key
    f = torch.randn(11, value.shape[0])
    with torch.no_grad():
        want = module.attention(f).numpy()
    assert np.abs(net.attention(f.numpy()) - want).max() < 1e-6


def test_numpy_classifier_matches_the_torch_module_on_random_weights() -> None:
    torch.manual_seed(4)
    module = ClassifierModule(ClassifierConfig(labels=["a", "b", "c"], n_train=5)).eval()
    module.case_mean.uniform_(-1, 1)
    module.case_std.uniform_(0.5, 2)
    module.train_case.normal_()
    module.novelty_radius.fill_(1.7)
    net = module.net()
    x = torch.randn(6, N_FEATURES)
    adj = torch.rand(6, 6)
    case = torch.randn(module.case_mean.shape[0])
    with torch.no_grad():
        want = module(x, adj).numpy()
        want_case = torch.softmax(
            module.case_head((case - module.case_mean) / module.case_std), dim=-1
        ).numpy()
        z = (case - module.case_mean) / module.case_std.clamp_min(1.0)
        want_novelty = float(torch.cdist(z[None, :], module.train_case).min() / 1.7)
    assert np.abs(net.logits(x.numpy(), adj.numpy()) - want).max() < 1e-5
    assert np.abs(net.case_probabilities(case.numpy()) - want_case).max() < 1e-6
    assert abs(net.novelty(case.numpy()) - want_novelty) < 1e-5
