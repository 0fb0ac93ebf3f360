"""``tamo cases`` through the real typer app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tamo.main import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["cases", *args])


def test_nezha_json_lists_52_cases_with_utc_offsets(nezha_root: Path) -> None:
    result = _invoke("--dataset", "nezha", "--root", str(nezha_root), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 52
    assert sum(r["system"] == "OB" for r in rows) == 24
    first = rows[0]
    assert first == {
        "case_id": "2022-08-22/frontend-579b9bff58-t2dbm/035354",
        "system": "OB",
        "service": "frontend",
        "fault_type": "cpu_contention",
        "injected_at": "2022-08-22T03:53:54+00:00",
    }
    assert all(r["injected_at"].endswith("+00:00") for r in rows)


def test_sockshop_json_has_null_injection(sockshop_root: Path) -> None:
    root = str(sockshop_root)
    result = _invoke("--dataset", "sockshop-rcd", "--root", root, "-p", "2,3", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 20
    assert {r["injected_at"] for r in rows} == {None}


def test_table_output_lists_cases_and_counts(nezha_root: Path) -> None:
    result = _invoke("--dataset", "nezha", "--root", str(nezha_root), "-p", "2023-01-29")
    assert result.exit_code == 0, result.output
    assert "28 labelled cases" in result.stdout
    assert "exception 13" in result.stdout


def test_bad_root_is_one_error_line(tmp_path: Path) -> None:
    result = _invoke("--dataset", "nezha", "--root", str(tmp_path / "missing"))
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "not found" in str(result.exception)
