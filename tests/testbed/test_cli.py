"""``tamo testbed``: a background testbed driven from the CLI, and no orphans when it dies."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest
import typer
from typer.testing import CliRunner

from tamo import testbed_cmd
from testbed import attach
from testbed.bed import stop_group
from testbed.runner import alive
from tools.core.errors import NotFoundError
from tools.telemetry.otlp_receiver import OtlpReceiver
from tools.telemetry.store import TelemetryStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

runner = CliRunner()
app = typer.Typer()  # only this command group: the others' imports are not under test here
testbed_cmd.register(app)


def tamo(*args: str) -> str:
    result = runner.invoke(app, ["testbed", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    if (tmp_path / "testbed.json").exists():  # a failed test still stops everything
        stop_group(int(attach(tmp_path)["pid"]))


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """tamo's own OTLP/HTTP receiver, writing into an in-memory store."""
    with OtlpReceiver(TelemetryStore(None), port=0, flush_interval_s=0.1) as r:
        yield r


def test_cli_up_inject_load_repair_down(workdir: Path, receiver: OtlpReceiver) -> None:
    wd = str(workdir)
    # ratio 0: only error or slow traces may reach tamo's receiver
    up = tamo("up", "--workdir", wd, "--otlp", receiver.url, "--sample-ratio", "0")
    assert "testbed up" in up
    status = json.loads(tamo("status", "--workdir", wd, "--json"))
    assert status["ok"] and status["faults"] == []
    router = attach(workdir)["urls"]["AgentRouter"]
    tamo("inject", "model-timeout", "--workdir", wd, "-p", "delay_s=0.05")
    summary = json.loads(tamo("load", "--workdir", wd, "--rate", "10", "--duration", "1", "--json"))
    assert summary["failure_rate"] == 1.0 and set(summary["error_codes"]) == {"MODEL_TIMEOUT"}
    failed = httpx.post(router + "/tasks", json={"task_id": "cli-bad"}, timeout=10).json()
    assert failed["error_code"] == "MODEL_TIMEOUT"
    assert "fallback" in tamo("model", "fallback", "--workdir", wd)
    summary = json.loads(tamo("load", "--workdir", wd, "--rate", "10", "--duration", "1", "--json"))
    assert summary["failure_rate"] == 0.0
    ok = httpx.post(router + "/tasks", json={"task_id": "cli-ok"}, timeout=10).json()
    assert ok["status"] == "success"
    # the error trace arrives whole (the keep set brings the healthy fragments of other
    # processes along); the healthy trace is sampled out
    time.sleep(0.8)  # export interval + receiver flush
    receiver.stop()  # flushes; the store is read only once its writer is done
    kept = receiver.store.trace(failed["trace_id"])
    reached = {"AgentRouter", "TaskPreprocessor", "Vectorizer", "ModelExecutor", "LLMAdapter"}
    assert set(kept.column("service").to_pylist()) == reached | {"InferenceRPC"}
    errors = kept.filter(pc.field("status") == "error")
    assert set(errors.column("service").to_pylist()) == reached - {
        "TaskPreprocessor",
        "Vectorizer",
    } | {"InferenceRPC"}
    attrs = [json.loads(a) for a in errors.column("attributes").to_pylist()]
    assert {a["task_id"] for a in attrs} == {"cli-bad"}
    assert {a["error_code"] for a in attrs} == {"MODEL_TIMEOUT"}
    with pytest.raises(NotFoundError):
        receiver.store.trace(ok["trace_id"])
    assert "model-timeout" in tamo("clear", "--workdir", wd)
    assert "WebhookDeliver" in tamo("skip", "WebhookDeliver", "--workdir", wd)
    assert "cli-ok#1: success" in tamo("redispatch", "cli-ok", "--seq", "1", "--from-step", "3",
                                       "--workdir", wd)  # fmt: skip
    assert "cli-ok step 3" in tamo("restore", "--task", "cli-ok", "--workdir", wd)  # latest
    bad = runner.invoke(app, ["testbed", "inject", "disk-full", "--workdir", wd])
    assert bad.exit_code == 2 and "unknown fault" in bad.output and "Traceback" not in bad.output

    modules = json.loads(tamo("status", "--workdir", wd, "--json"))["modules"]
    pids = [m["pid"] for m in modules.values()]
    controller = int(attach(workdir)["pid"])
    os.kill(controller, signal.SIGKILL)  # a crashed controller must not leave orphans
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
    assert "testbed down" in tamo("down", "--workdir", wd)
    assert not (workdir / "testbed.json").exists()
