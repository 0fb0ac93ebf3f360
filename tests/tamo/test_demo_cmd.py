from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from tamo.console import console
from tamo.demo_catalog import published_catalog, treats
from tamo.demo_cmd import register
from tools.repair import RuleEngine, load_strategies
from tools.repair.diagnosis import Diagnosis

CATALOG = published_catalog()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(console, "width", 200)
    a = typer.Typer()
    register(a)
    a.command("noop")(lambda: None)
    return a


def test_the_scenarios_are_the_published_faults(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 40)  # one line per scenario however narrow
    r = CliRunner().invoke(app, ["demo", "--list-scenarios"])
    assert r.exit_code == 0
    listed = [line.split()[0] for line in r.output.splitlines() if line.strip()]
    assert listed == list(CATALOG.faults) and "inference-hang" in listed


def test_unknown_scenario_is_one_red_line(app: typer.Typer) -> None:
    r = CliRunner().invoke(app, ["demo", "--scenario", "meteor-strike"])
    assert r.exit_code == 2 and "unknown scenario 'meteor-strike'" in r.output


@pytest.mark.parametrize("name", sorted(CATALOG.faults))
def test_the_library_treats_each_fault_it_is_told_about(name: str) -> None:
    """A diagnosis as the catalogue describes the fault (its target, the fault its error code
    names) gets a library plan whose actions the catalogue says clear or bypass the fault: what
    the loop must reach on its own from the telemetry."""
    fault = CATALOG.faults[name]
    meaning = CATALOG.error_codes.get(fault.error_code)
    fault_type = meaning.fault if meaning else name.replace("-", "_")
    d = Diagnosis(service=fault.target, fault_type=fault_type, error_codes=[fault.error_code])
    plan = RuleEngine(load_strategies()).pick(d)
    assert plan is not None and treats(plan.model_dump(mode="json"), fault)


def test_an_action_on_another_module_does_not_treat_the_fault() -> None:
    fault = CATALOG.faults["span-drop"]
    restart = {"type": "graceful_restart", "target": fault.target, "params": {}}
    other = {"type": "graceful_restart", "target": "AgentRouter", "params": {}}
    assert treats({"actions": [restart]}, fault) and not treats({"actions": [other]}, fault)


@pytest.mark.parametrize(
    ("arg", "message"),
    [("nope=1", "KEY one of hang_s"), ("hang_s=x", "'x' is not a number"), ("hang_s", "KEY=")],
)
def test_a_bad_fault_param_is_one_red_line(app: typer.Typer, arg: str, message: str) -> None:
    r = CliRunner().invoke(app, ["demo", "--scenario", "inference-hang", "--param", arg])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
