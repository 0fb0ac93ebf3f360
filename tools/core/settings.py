"""Configuration: environment (``TAMO_*``), an optional ``tamo.toml``, and offline defaults.

Why: every component reads the same settings object so that a user configures a backend or an
LLM endpoint once. Defaults need no network and no configuration at all: the embedded DuckDB
store under the user's data dir, no LLM (deterministic planner), dry-run repairs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_data_dir() -> Path:
    return Path(user_data_dir("tamo-rca", appauthor=False))


class LLMSettings(BaseSettings):
    """An OpenAI-compatible endpoint; with no ``api_key`` the agent runs without an LLM."""

    model_config = SettingsConfigDict(env_prefix="TAMO_LLM_", extra="ignore")

    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    temperature: float = 0.0
    timeout_s: float = 30.0
    max_retries: int = 3
    max_tool_calls: int = 6
    max_prompt_tokens: int = 4000


class BackendSettings(BaseSettings):
    """Real backends; each left unset falls back to the embedded store."""

    model_config = SettingsConfigDict(env_prefix="TAMO_", extra="ignore")

    prometheus_url: str | None = None
    loki_url: str | None = None
    jaeger_url: str | None = None
    tempo_url: str | None = None
    backend_token: SecretStr | None = None
    backend_username: str | None = None  # basic auth (with backend_password), if no token
    backend_password: SecretStr | None = None
    http_timeout_s: float = 10.0
    http_retries: int = 3


class Settings(BaseSettings):
    """Top-level settings. Nested groups read their own ``TAMO_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="TAMO_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    store_path: Path | None = None
    kb_path: Path | None = None
    audit_dir: Path | None = None
    checkpoint_path: Path | None = None
    models_dir: Path | None = None
    datasets_root: Path = Path("../shared/datasets")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    backends: BackendSettings = Field(default_factory=BackendSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Read at instantiation, not import, so TAMO_CONFIG set later still applies.
        toml_file = os.environ.get("TAMO_CONFIG", "tamo.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    def path(self, name: str, default_name: str) -> Path:
        """The configured path ``name`` or ``data_dir/default_name``, parent created."""
        value: Path | None = getattr(self, name)
        p = value if value is not None else self.data_dir / default_name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def store_file(self) -> Path:
        return self.path("store_path", "telemetry.duckdb")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
