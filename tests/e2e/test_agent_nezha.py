"""Offline ``tamo diagnose`` on a real Nezha case: every report section, no LLM, one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tools.telemetry.datasets import get_adapter

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.datasets, pytest.mark.timeout(300)]


def run_tamo(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMO_")}
    env.update(
        TAMO_DATA_DIR=str(tmp_path / "data"), TAMO_CONFIG=str(tmp_path / "none.toml"), COLUMNS="200"
    )
    return subprocess.run(
        [sys.executable, "-m", "tamo.main", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=280,
    )


def test_offline_diagnosis_of_a_nezha_case(nezha_root: Path, tmp_path: Path) -> None:
    case = next(c for c in get_adapter("nezha").cases(nezha_root) if c.system == "TT")
    proc = run_tamo(
        [
            "diagnose",
            "--dataset",
            "nezha",
            "--root",
            str(nezha_root),
            "--case",
            case.case_id,
            "--format",
            "json",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["produced_with"].startswith("produced without an LLM")
    a = r["analysis"]
    # the calibrated probability, or None while no calibration is installed (never the score)
    p = a["root_cause_confidence"]
    assert a["root_cause"] and (p is None or 0 < p <= 1)
    assert a["fault_type"] and a["evidence"] and all(e["query"] for e in a["evidence"])
    assert r["impact"]["requests"] > 0
    assert r["priority"]["level"] in {"P0", "P1", "P2", "P3"} and r["priority"]["rule"]
    assert r["remediation"]["status"]
    assert r["alternatives"] and r["modalities_used"] and r["not_checked"]
    assert r["usage"]["tool_calls"] >= 8
