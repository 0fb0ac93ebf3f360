"""Fixtures for agent tests: the synthetic incident, settings in tmp, a repair target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.agent.synthetic import synthetic_case
from tools.core.settings import LLMSettings, Settings
from tools.repair import ActionResult, AuditLog, PlannedAction, SafetyPolicy
from tools.repair.identity import os_principal
from tools.repair.strategy import parse_strategies
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import RepairSetup, configure

# The principals allowed to approve in these tests: the OS account running them (CLI, chat, MCP
# over stdio), one Slack user and one MCP token holder. Anyone else is refused.
SLACK_APPROVER = "U0APPROVER"
MCP_APPROVER = "alice"
APPROVERS = [os_principal(), f"slack:{SLACK_APPROVER}", f"mcp:{MCP_APPROVER}"]

# The toolbox's tools, written once for the toolbox and MCP tests (the agent adds
# ``diagnose_incident`` on top of them).
TOOLBOX_TOOLS = {
    "query_traces",
    "search_logs",
    "query_promql",
    "fuse_modalities",
    "localize_root_cause",
    "classify_fault",
    "analyze_traces",
    "match_fingerprint",
    "list_strategies",
    "plan_repair",
    "execute_repair",
}

STRATEGY = """
strategies:
  - strategy_id: payment_restart
    description: "restart the payment service"
    repair_class: restart
    executor: recorder
    condition:
      service: [paymentservice]
    actions:
      - rollout_restart: "{service}"
"""


class RecordingExecutor:
    """The system being repaired, as seen by the repair engine: it records what it was asked."""

    name = "recorder"
    supported = frozenset({"rollout_restart", "graceful_restart", "scale"})
    dedupes = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def dry_run(self, action: PlannedAction, *, key: str) -> ActionResult:
        self.calls.append(("dry_run", action.type, action.target))
        return ActionResult(ok=True, detail=f"would {action.type} {action.target}", dry_run=True)

    def execute(self, action: PlannedAction, *, key: str) -> ActionResult:
        self.calls.append(("execute", action.type, action.target))
        return ActionResult(ok=True, detail=f"{action.type} {action.target} done")

    def rollback(
        self, action: PlannedAction, *, key: str, previous: dict[str, Any]
    ) -> ActionResult:
        self.calls.append(("rollback", action.type, action.target))
        return ActionResult(ok=True, detail="rolled back")

    def precheck(self, check: str, action: PlannedAction) -> ActionResult:
        return ActionResult(ok=True, detail=check)

    def executed(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] == "execute"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", llm=LLMSettings(api_key=None))


def llm_settings(url: str, **kw: Any) -> LLMSettings:
    base = {
        "api_key": SecretStr("sk-test"),
        "base_url": url,
        "model": "fake-sre-1",
        "timeout_s": 5.0,
        "max_retries": 2,
    }
    return LLMSettings(**{**base, **kw})


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


def repair_ctx(settings: Settings, recorder: RecordingExecutor, audit: Path) -> ToolContext:
    """The synthetic case's context with repair configured: ``STRATEGY`` run by ``recorder``,
    audited under ``audit``. Called again on the same ``audit``, it is what a restarted process
    builds: new sources, new caches, the same audit directory."""
    ctx = ToolContext.from_case(synthetic_case(), settings)
    configure(
        ctx,
        RepairSetup(
            strategies=parse_strategies(STRATEGY, "test-strategies.yaml"),
            executors={"recorder": recorder},
            policy=SafetyPolicy(allow_targets=["*"], approvers=APPROVERS),
            audit=AuditLog(audit),
        ),
    )
    return ctx


class Calibration:
    """Stands in for tools/learned's calibration: every ranking's top gets confidence ``p``
    (without one, the repair gate holds every plan back). Set ``p`` before the diagnosis."""

    def __init__(self, p: float | None = 0.9) -> None:
        self.p = p


@pytest.fixture
def calibration(monkeypatch: pytest.MonkeyPatch) -> Calibration:
    import tools.learned as learned

    cal = Calibration()
    real = learned.localize_root_cause

    def localize(*args: Any, **kwargs: Any) -> Any:
        ranking = real(*args, **kwargs)
        ranking.confidence = cal.p
        return ranking

    monkeypatch.setattr(learned, "localize_root_cause", localize)
    return cal


@pytest.fixture
def case_ctx(
    settings: Settings, recorder: RecordingExecutor, tmp_path: Path, calibration: Calibration
) -> ToolContext:
    """The synthetic case with repair configured; rankings calibrated (p = 0.9): plans may act."""
    return repair_ctx(settings, recorder, tmp_path / "audit")
