"""``tamo traces`` through the real typer app: the JSON contract, the KB commands, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.traces_synth import generate, to_jaeger_json, write_otlp
from tamo.main import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("TAMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TAMO_KB_PATH", raising=False)
    data = generate(600, seed=5, anomaly_rate=0.08)
    normal = generate(400, seed=6, anomaly_rate=0.0)
    return {
        "input": write_otlp(data.spans, tmp_path / "traces.json", data.logs),
        "baseline": write_otlp(normal.spans, tmp_path / "normal.json"),
        "out": tmp_path / "out" / "result.json",
        "kb": tmp_path / "kb.sqlite",
    }


def test_analyze_writes_the_contract(files: dict[str, Path]) -> None:
    args = [
        "traces",
        "analyze",
        "--input",
        str(files["input"]),
        "--baseline",
        str(files["baseline"]),
    ]
    result = runner.invoke(app, [*args, "--json", str(files["out"]), "--kb", str(files["kb"])])
    assert result.exit_code == 0, result.output
    out = json.loads(files["out"].read_text())
    assert {"traces", "clusters", "incidents"} <= set(out)
    assert len(out["traces"]) == 600
    keys = {
        "trace_id",
        "anomalous",
        "anomaly_score",
        "cluster_id",
        "root_span",
        "reason",
        "fingerprint_id",
    }
    assert all(set(t) == keys for t in out["traces"])
    bad = [t for t in out["traces"] if t["anomalous"]]
    assert bad and all(
        "::" in t["root_span"] and t["cluster_id"] and t["fingerprint_id"] for t in bad
    )
    assert all(
        {"cluster_id", "size", "root_span", "fingerprint"} <= set(c) for c in out["clusters"]
    )
    assert sum(c["size"] for c in out["clusters"]) == len(bad)
    assert "anomalous" in result.output

    listing = runner.invoke(app, ["traces", "kb", "list", "--kb", str(files["kb"])])
    assert listing.exit_code == 0, listing.output
    fid = out["clusters"][0]["fingerprint_id"]
    shown = runner.invoke(app, ["traces", "kb", "show", fid, "--kb", str(files["kb"])])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["fingerprint_id"] == fid
    root = out["clusters"][0]["root_span"]
    confirm = [
        "traces",
        "kb",
        "confirm",
        fid,
        "--root",
        root,
        "--fix",
        "restart",
        "--kb",
        str(files["kb"]),
    ]
    assert runner.invoke(app, confirm).exit_code == 0

    again = runner.invoke(app, [*args, "--json", str(files["out"]), "--kb", str(files["kb"])])
    assert again.exit_code == 0, again.output
    known = [c["known"] for c in json.loads(files["out"].read_text())["clusters"] if c["known"]]
    assert any(
        k["root_cause"] == root and k["strategy"] == "restart" and k["score"] > 0.85 for k in known
    )


def test_default_kb_lives_in_the_data_dir(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["traces", "analyze", "--input", str(files["input"])])
    assert result.exit_code == 0, result.output
    assert (files["kb"].parent / "data" / "traces_kb.sqlite").exists()


def test_bad_input_is_one_red_line(tmp_path: Path, files: dict[str, Path]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceSpans": [{"scopeSpans": 7}]}')
    result = runner.invoke(app, ["traces", "analyze", "--input", str(broken), "--no-kb"])
    assert result.exit_code == 2
    assert "broken.json" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["traces", "kb", "show", "nope", "--kb", str(files["kb"])])
    assert missing.exit_code == 2 and "unknown fingerprint" in missing.output


def test_jaeger_json_input(tmp_path: Path, files: dict[str, Path]) -> None:
    data = generate(400, seed=7, anomaly_rate=0.08)
    jaeger = tmp_path / "jaeger.json"
    jaeger.write_text(json.dumps(to_jaeger_json(data.spans)))
    result = runner.invoke(
        app, ["traces", "analyze", "--input", str(jaeger), "--json", str(files["out"]), "--no-kb"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(files["out"].read_text())
    assert len(out["traces"]) == 400
    flagged = {t["trace_id"] for t in out["traces"] if t["anomalous"]}
    truth = {t for t, (kind, _) in data.labels.items() if kind != "normal"}
    assert len(flagged & truth) >= 0.9 * len(truth)
