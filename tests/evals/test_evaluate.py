from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evals.evaluate import app as evaluate
from tamo.main import app

runner = CliRunner()


@pytest.mark.slow
def test_train_then_eval_with_the_checkpoints(sockshop_root: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    res = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            "sockshop-rcd",
            "--root",
            str(sockshop_root),
            "--runs",
            "1",
            "--out",
            str(models),
        ],
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in models.iterdir()} == {
        "t1_diffusion.pt",
        "t2_localizer.pt",
        "t2_ranker.pt",
        "t3_classifier.pt",
    }
    out = tmp_path / "r.json"
    args = ["--dataset", "sockshop-rcd", "--root", str(sockshop_root), "--runs", "1"]
    args += ["--models", str(models), "--method", "no-freq-attention", "--json", str(out)]
    res = runner.invoke(evaluate, [*args, "--classifier", "models"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["method"] == "no-freq-attention" and data["systems"]["SockShop"]["cases"] == 10
    # a checkpoint from another dataset is refused in one line
    res = runner.invoke(
        evaluate, ["--dataset", "nezha", "--root", str(sockshop_root), "--models", str(models)]
    )
    assert res.exit_code == 2 and "trained on dataset 'sockshop-rcd'" in res.output
    (models / "t1_diffusion.pt").write_bytes(b"broken")
    res = runner.invoke(evaluate, args)
    assert res.exit_code == 2 and "corrupt" in res.output


@pytest.mark.parametrize(
    ("cli", "args"),
    [(app, ["train", "--out", "models"]), (evaluate, [])],
    ids=["tamo train", "evals.evaluate"],
)
def test_unknown_dataset_is_one_red_line(cli: typer.Typer, args: list[str], tmp_path: Path) -> None:
    res = runner.invoke(cli, [*args, "--dataset", "nope", "--root", str(tmp_path)])
    assert res.exit_code == 2
    assert "unknown dataset" in res.output and "Traceback" not in res.output


def test_the_cli_has_no_eval_command() -> None:
    res = runner.invoke(app, ["eval", "--help"])
    assert res.exit_code != 0 and "No such command" in res.output
