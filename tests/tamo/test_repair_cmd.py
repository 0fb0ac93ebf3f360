from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tamo.console import console
from tamo.repair_cmd import register
from tests.repair.webhook_server import WebhookServer
from tools.repair import AuditLog
from tools.repair.identity import os_principal

runner = CliRunner()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(console, "width", 220)  # tables unclipped
    a = typer.Typer()
    register(a)
    return a


def diag(tmp_path: Path, **over: object) -> Path:
    p = tmp_path / "d.json"
    p.write_text(
        json.dumps(
            {
                "service": "InferenceRPC",
                "fault_type": "model_timeout",
                "error_codes": ["MODEL_TIMEOUT"],
                "detected_at": "2026-11-26T10:00:00Z",
                "confidence": 0.9,
                "evidence_modalities": ["traces", "metrics"],
                **over,
            }
        )
    )
    return p


@pytest.fixture
def execute(tmp_path: Path) -> list[str]:
    """``tamo repair execute`` of a model timeout under one notify-only strategy, allowed on
    ``Inference*`` and audited in ``tmp_path/audit``; a test adds the executor and ``--yes``."""
    (tmp_path / "s.yaml").write_text(
        "- {strategy_id: notify_only, repair_class: notify, executor: webhook,"
        " condition: {fault_type: model_timeout}, actions: [{notify: '{module}'}]}"
    )
    return [
        *("repair", "execute", "--diagnosis", str(diag(tmp_path))),
        *("--strategies", str(tmp_path / "s.yaml"), "--allow", "Inference*"),
        *("--audit-dir", str(tmp_path / "audit")),
    ]


def test_strategies_and_plan(app: typer.Typer, tmp_path: Path) -> None:
    r = runner.invoke(app, ["repair", "strategies"])
    assert r.exit_code == 0 and "executor_restart_fallback" in r.output
    r = runner.invoke(app, ["repair", "plan", "--diagnosis", str(diag(tmp_path)), "--json"])
    assert r.exit_code == 0
    plan = json.loads(r.output)
    assert plan["strategy_id"] == "model_fallback_switch"
    assert plan["actions"][0]["params"] == {"model": "fallback"}


def test_bad_inputs_are_one_line_exit_2(app: typer.Typer, tmp_path: Path) -> None:
    r = runner.invoke(app, ["repair", "plan", "--diagnosis", str(diag(tmp_path, service=3))])
    assert r.exit_code == 2 and "field service" in r.output
    r = runner.invoke(
        app,
        ["repair", "plan", "--diagnosis", str(diag(tmp_path, service="nowhere", fault_type="odd"))],
    )
    assert r.exit_code == 2 and "no strategy applies to nowhere.odd" in r.output


def test_execute_then_audit_commands(
    app: typer.Typer, execute: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMO_REPAIR_APPROVERS", os_principal())
    audit = tmp_path / "audit"
    with WebhookServer() as hook:
        r = runner.invoke(app, [*execute, "--webhook", hook.url])
        assert r.exit_code == 1 and "approval required" not in r.output  # approver said no
        assert "not approved" in r.output
        r = runner.invoke(app, [*execute, "--webhook", hook.url, "--yes"])
        assert r.exit_code == 0 and "success" in r.output
        assert [c["mode"] for c in hook.calls].count("execute") == 1
    r = runner.invoke(app, ["audit", "list", "--audit-dir", str(audit), "--event", "approval"])
    assert r.exit_code == 0 and "denied" in r.output and "approved" in r.output
    assert [e.executed_by for e in AuditLog(audit).entries(event="approval")] == [
        os_principal()
    ] * 2
    r = runner.invoke(app, ["audit", "verify", "--audit-dir", str(audit)])
    assert r.exit_code == 0 and "chain intact" in r.output
    r = runner.invoke(app, ["audit", "show", "1", "--audit-dir", str(audit)])
    assert json.loads(r.output)["event"] == "plan"
    out = tmp_path / "pkg.json"
    r = runner.invoke(app, ["audit", "export", "--audit-dir", str(audit), "--out", str(out)])
    assert json.loads(out.read_text())["chain"]["ok"]
    lines = (audit / "audit.jsonl").read_text().splitlines()
    (audit / "audit.jsonl").write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    r = runner.invoke(app, ["audit", "verify", "--audit-dir", str(audit)])
    assert r.exit_code == 1 and "chain broken at entry 3" in r.output
    assert AuditLog(audit).verify().first_bad_seq == 3


def test_execute_refuses_an_os_account_outside_the_approvers(
    app: typer.Typer, execute: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMO_REPAIR_APPROVERS", "os:somebody-else")
    monkeypatch.setenv("USER", "somebody-else")  # $USER is no identity: the uid is
    monkeypatch.setenv("LOGNAME", "somebody-else")
    audit = tmp_path / "audit"
    with WebhookServer() as hook:
        r = runner.invoke(app, [*execute, "--webhook", hook.url, "--yes"])
        assert hook.modes("execute") == []
    assert r.exit_code == 1
    assert f"approval refused: {os_principal()} is not in TAMO_REPAIR_APPROVERS" in r.output
    (entry,) = AuditLog(audit).entries(event="approval")
    assert (entry.executed_by, entry.status) == (os_principal(), "refused")


def test_execute_holds_back_a_diagnosis_without_evidence(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMO_REPAIR_APPROVERS", os_principal())
    d = diag(tmp_path, confidence=None, evidence_modalities=["logs"])
    with WebhookServer() as hook:
        r = runner.invoke(
            app,
            [
                *("repair", "execute", "--diagnosis", str(d), "--allow", "*"),
                *("--webhook", hook.url, "--audit-dir", str(tmp_path / "audit"), "--yes"),
            ],
        )
        assert hook.calls == []
    assert r.exit_code == 1 and "plan and report only" in r.output
