"""Settings: offline defaults, TAMO_* environment, tamo.toml, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.core.settings import Settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("TAMO_LLM_API_KEY", "TAMO_PROMETHEUS_URL", "TAMO_DATA_DIR", "TAMO_STORE_PATH"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.llm.api_key is None
    assert s.backends.prometheus_url is None
    assert s.store_file.name == "telemetry.duckdb"


def test_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tamo.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAMO_CONFIG", str(tmp_path / "tamo.toml"))
    monkeypatch.setenv("TAMO_LLM_API_KEY", "sk-secret-value")
    monkeypatch.setenv("TAMO_PROMETHEUS_URL", "http://127.0.0.1:9090")
    monkeypatch.delenv("TAMO_DATA_DIR", raising=False)  # the environment would beat the file
    s = Settings()
    assert s.data_dir == tmp_path / "data"
    assert s.store_file == tmp_path / "data" / "telemetry.duckdb"
    assert s.backends.prometheus_url == "http://127.0.0.1:9090"
    assert s.llm.api_key is not None
    assert s.llm.api_key.get_secret_value() == "sk-secret-value"
    assert "sk-secret-value" not in repr(s)
