from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tools.core.errors import CheckpointError
from tools.learned import checkpoint
from tools.learned.classifier import ClassifierConfig, FaultTypeClassifier
from tools.learned.diffusion import DualBranchDiffusion
from tools.learned.localize import FrequencyAttention
from tools.learned.models import LearnedModels, load_models

SIG = {"name": "sockshop-rcd", "parts": ["1"], "cases": 10}


def _bundle() -> LearnedModels:
    torch.manual_seed(0)
    return LearnedModels(
        diffusion=DualBranchDiffusion(),
        localizer=FrequencyAttention(),
        classifier=FaultTypeClassifier(ClassifierConfig(labels=["cpu", "mem"])),
        dataset=SIG,
    )


def test_roundtrip(tmp_path: Path) -> None:
    bundle = _bundle()
    bundle.save(tmp_path)
    loaded = load_models(tmp_path, dataset="sockshop-rcd")
    assert loaded.dataset == SIG and loaded.trained
    assert loaded.classifier is not None and loaded.classifier.config.labels == ["cpu", "mem"]
    assert bundle.diffusion is not None and loaded.diffusion is not None
    saved, restored = bundle.diffusion.state_dict(), loaded.diffusion.state_dict()
    for key, value in saved.items():
        assert torch.equal(value, restored[key]), key


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
