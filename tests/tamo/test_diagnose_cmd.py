"""`tamo diagnose` and `tamo chat` in-process, on a store holding the synthetic incident."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.agent.synthetic import ABNORMAL
from tests.mcp_server.conftest import store_env  # noqa: F401  (fixture)
from tools.core.settings import get_settings

WINDOW = [
    "--start",
    ABNORMAL.start.strftime("%Y-%m-%dT%H:%M:%S"),
    "--end",
    ABNORMAL.end.strftime("%Y-%m-%dT%H:%M:%S"),
]


@pytest.fixture
def cli(store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:  # noqa: F811
    for k, v in store_env.items():
        if k.startswith("TAMO_"):
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("TAMO_LLM_API_KEY", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_diagnose_window_as_json(cli: CliRunner) -> None:
    from tamo.main import app

    out = cli.invoke(app, ["diagnose", *WINDOW, "--format", "json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["analysis"]["root_cause"] == "paymentservice"
    assert report["produced_with"].startswith("produced without an LLM")
    for section in (
        "impact",
        "priority",
        "remediation",
        "alternatives",
        "modalities_used",
        "not_checked",
    ):
        assert section in report


def test_diagnose_markdown_with_repair_request(cli: CliRunner) -> None:
    from tamo.main import app

    out = cli.invoke(
        app,
        ["diagnose", *WINDOW, "--service", "paymentservice", "--repair", "--approve"],
    )
    assert out.exit_code == 0, out.output
    assert "## Remediation" in out.stdout and "## Priority" in out.stdout
    # no calibration is installed here: whatever matched is shown, never put to approval or run
    assert "Status: none-matched" in out.stdout or "no calibrated confidence" in out.stdout
    assert "REAL RUN" not in out.stderr and "dry run" not in out.stderr
    assert "investigation id: inv-" in out.stderr


def test_chat_shows_tool_calls_and_answers_follow_ups(cli: CliRunner) -> None:
    from tamo.main import app

    out = cli.invoke(
        app, ["chat", *WINDOW], input="why are payments failing?\nwhat is the priority?\n/quit\n"
    )
    assert out.exit_code == 0, out.output
    assert "→ query_traces(" in out.stdout and "→ localize_root_cause(" in out.stdout
    assert "# Incident" in out.stdout
    assert "P0:" in out.stdout or "P1:" in out.stdout or "P2:" in out.stdout


def test_unknown_case_is_one_red_line(
    nezha_root, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tamo.main import run

    argv = ["tamo", "diagnose", "--dataset", "nezha", "--root", str(nezha_root), "--case", "nope"]
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_:
        run()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "no case 'nope'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
