"""Configuration shared by the controller and the module processes.

Why two models: ``StaticConfig`` is fixed for the life of a testbed (where telemetry goes, where
state lives, timeouts) and travels to every process in an environment variable;
``RuntimeConfig`` is what the control API changes (active faults, model, skip flags); the
controller hands it to a module it (re)starts and pushes it to every module after each change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from testbed.catalog import FAULTS

STATIC_ENV = "TESTBED_STATIC"
FD_ENV = "TESTBED_FD"
REDIS_URL_ENV = "TESTBED_REDIS_URL"  # selects the Redis state backend when no URL is passed


class StaticConfig(BaseModel):
    """Fixed settings of one testbed instance."""

    workdir: Path
    otlp_endpoint: str | None = None  # base URL of an OTLP/HTTP receiver; /v1/traces is appended
    spans_jsonl: bool = True  # also write spans as OTLP JSON lines under workdir/spans/
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)  # ratio for traces with no error/slow span
    slow_ms: float = Field(1000.0, gt=0)  # a span at least this long is always kept
    keep_hold_s: float = Field(15.0, gt=0)  # how long a healthy fragment waits for a keep mark
    infer_timeout_s: float = Field(1.0, gt=0)  # LLMAdapter -> InferenceRPC deadline per attempt
    call_timeout_s: float = Field(10.0, gt=0)  # every other module-to-module call
    max_dispatches: int = Field(4, ge=1)  # per task: first dispatch + re-dispatches (TTL guard)
    export_interval_s: float = Field(0.2, gt=0)  # span batch flush interval
    redis_url: str | None = None  # state in Redis (redis://host:port/db); None = SQLite state_db

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def spans_dir(self) -> Path:
        return self.workdir / "spans"

    @property
    def state_db(self) -> Path:
        return self.workdir / "state.sqlite"


class RuntimeConfig(BaseModel):
    """What the control API changes at run time."""

    urls: dict[str, str] = Field(default_factory=dict)  # module -> base URL
    faults: dict[str, dict[str, float]] = Field(default_factory=dict)  # fault -> params
    model: Literal["primary", "fallback"] = "primary"
    skip: list[str] = Field(default_factory=list)

    def fault(self, name: str) -> dict[str, float] | None:
        """The params of an active fault (defaults merged in), or ``None`` when inactive."""
        if name not in self.faults:
            return None
        return {**FAULTS[name].params, **self.faults[name]}

    def skipped(self, module: str) -> bool:
        return module in self.skip


def load_static() -> StaticConfig:
    return StaticConfig.model_validate_json(os.environ[STATIC_ENV])
