"""The learned tools as the agent calls them run on trained models without torch or scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tools.learned.classifier import ClassifierConfig
from tools.learned.classifier_train import ClassifierModule
from tools.learned.diffusion_train import DualBranchDiffusion
from tools.learned.localize import FrequencyAttention, LocalizerConfig
from tools.learned.models import LearnedModels
from tools.learned.ranker import RankerConfig, RootCauseRanker

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sklearn", "scipy")

PROBE = """
import json, sys
from pathlib import Path
from tests.learned.conftest import make_case
from tools.learned import align_case, classify_fault, fuse_modalities, load_models
from tools.learned import localize_root_cause
models = load_models(Path(sys.argv[1]))
fused = fuse_modalities(align_case(make_case()), models)
ranking = localize_root_cause(fused, models=models)
fault = classify_fault(fused, ranking, models)
print(json.dumps({
    "trained": [k for k in ("diffusion", "localizer", "classifier", "ranker")
                if getattr(models, k) is not None],
    "method": fused.method,
    "confidence": ranking.confidence,
    "loaded": [m for m in %r if m in sys.modules],
}))
"""


def test_fuse_localize_classify_on_trained_models_import_no_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    LearnedModels(
        diffusion=DualBranchDiffusion().net(),
        localizer=FrequencyAttention.untrained(LocalizerConfig()),
        classifier=ClassifierModule(ClassifierConfig(labels=["cpu", "mem"])).net(),
        ranker=RootCauseRanker(RankerConfig()),
        dataset={"name": "synthetic"},
    ).save(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["trained"] == ["diffusion", "localizer", "classifier", "ranker"]
    assert result["method"] == "diffusion" and result["confidence"] is not None
    assert result["loaded"] == []
