"""Fixtures: a telemetry store file with the synthetic incident, and the env to serve it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.conftest import (  # noqa: F401  (shared fixtures)
    calibration,
    case_ctx,
    recorder,
    settings,
)
from tests.agent.synthetic import synthetic_case
from tools.telemetry.store import TelemetryStore


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `tamo mcp` subprocess reading a store with the synthetic incident."""
    ct = synthetic_case()
    path = tmp_path / "telemetry.duckdb"
    store = TelemetryStore(path)
    for kind in ("spans", "logs", "metrics"):
        store.insert(kind, getattr(ct, kind), f"synthetic-{kind}")
        store.insert(kind, getattr(ct, f"baseline_{kind}"), f"synthetic-baseline-{kind}")
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMO_")}
    env.update(
        TAMO_DATA_DIR=str(tmp_path / "data"),
        TAMO_STORE_PATH=str(path),
        TAMO_CONFIG=str(tmp_path / "none.toml"),
        FASTMCP_LOG_LEVEL="WARNING",
    )
    return env
