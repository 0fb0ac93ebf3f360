from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from tamo.console import console
from tamo.demo_cmd import SCENARIOS, register
from testbed.catalog import FAULTS
from tools.repair import RuleEngine, load_strategies
from tools.repair.diagnosis import Diagnosis


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(console, "width", 200)
    a = typer.Typer()
    register(a)
    a.command("noop")(lambda: None)
    return a


def test_list_scenarios(app: typer.Typer) -> None:
    r = CliRunner().invoke(app, ["demo", "--list-scenarios"])
    assert r.exit_code == 0
    for name in (
        "llm-hang",
        "callback-failure",
        "state-write-error",
        "span-drop",
        "context-loss",
        "retry-storm",
    ):
        assert name in r.output


def test_unknown_scenario_is_one_red_line(app: typer.Typer) -> None:
    r = CliRunner().invoke(app, ["demo", "--scenario", "meteor-strike"])
    assert r.exit_code == 2 and "unknown scenario 'meteor-strike'" in r.output


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_expects_a_library_strategy_for_its_fault(name: str) -> None:
    """The scoring key of every scenario is a strategy the library picks for the testbed
    fault's module and fault type (what the loop must find on its own)."""
    sc = SCENARIOS[name]
    fault = FAULTS[sc.fault]
    d = Diagnosis(
        service=fault.target, fault_type=sc.fault.replace("-", "_"), error_codes=[fault.error_code]
    )
    plan = RuleEngine(load_strategies()).pick(d)
    assert plan is not None and plan.strategy_id == sc.strategy
