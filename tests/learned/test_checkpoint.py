from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tools.core.errors import CheckpointError
from tools.learned import checkpoint
from tools.learned.classifier import ClassifierConfig
from tools.learned.classifier_train import ClassifierModule
from tools.learned.diffusion_train import DualBranchDiffusion
from tools.learned.localize import FrequencyAttention, LocalizerConfig
from tools.learned.models import LearnedModels, load_models
from tools.learned.ranker import RankerConfig, RootCauseRanker

SIG = {"name": "sockshop-rcd", "parts": ["1"], "cases": 10}


def _bundle() -> LearnedModels:
    torch.manual_seed(0)
    return LearnedModels(
        diffusion=DualBranchDiffusion().net(),
        localizer=FrequencyAttention.untrained(LocalizerConfig()),
        classifier=ClassifierModule(ClassifierConfig(labels=["cpu", "mem"])).net(),
        ranker=RootCauseRanker(RankerConfig(), {"platt": np.array([0.1, 2.0, 0.3])}),
        dataset=SIG,
    )


def test_roundtrip(tmp_path: Path) -> None:
    bundle = _bundle()
    bundle.save(tmp_path)
    loaded = load_models(tmp_path, dataset="sockshop-rcd")
    assert loaded.dataset == SIG and loaded.trained
    assert loaded.classifier is not None and loaded.classifier.config.labels == ["cpu", "mem"]
    assert bundle.diffusion is not None and loaded.diffusion is not None
    for kind in ("diffusion", "localizer", "classifier", "ranker"):
        saved = getattr(bundle, kind).state_dict()
        restored = getattr(loaded, kind).state_dict()
        assert saved.keys() == restored.keys(), kind
        for key, value in saved.items():
            assert np.array_equal(value, restored[key]) and value.dtype == restored[key].dtype, key
    # torch itself reads the same file (training and other tools may)
    payload = torch.load(tmp_path / "t1_diffusion.pt", weights_only=True)
    assert torch.equal(
        payload["state_dict"]["out.bias"], torch.from_numpy(bundle.diffusion.weights["out.bias"])
    )


def test_missing_directory_means_untrained(tmp_path: Path) -> None:
    models = load_models(tmp_path / "nothing")
    assert not models.trained and "untrained" in models.describe()


def test_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    _bundle().save(tmp_path)
    (tmp_path / "t1_diffusion.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_models(tmp_path)


def test_other_dataset_is_refused(tmp_path: Path) -> None:
    _bundle().save(tmp_path)
    with pytest.raises(CheckpointError, match="trained on dataset 'sockshop-rcd', not 'nezha'"):
        load_models(tmp_path, dataset="nezha")


def test_other_code_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _bundle().save(tmp_path)
    monkeypatch.setattr(checkpoint, "code_version", lambda: "9.9+000000000000")
    with pytest.raises(CheckpointError, match="code version"):
        load_models(tmp_path)


def test_wrong_kind_is_refused(tmp_path: Path) -> None:
    _bundle().save(tmp_path)
    (tmp_path / "t2_localizer.pt").write_bytes((tmp_path / "t1_diffusion.pt").read_bytes())
    with pytest.raises(CheckpointError, match="holds a 'diffusion' model"):
        load_models(tmp_path)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_a_checkpoint_naming_any_other_global_is_refused(tmp_path: Path) -> None:
    _bundle().save(tmp_path)
    torch.save(
        {"format": checkpoint.FORMAT, "kind": "diffusion", "x": _Payload()},
        tmp_path / "t1_diffusion.pt",
    )
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_models(tmp_path)
