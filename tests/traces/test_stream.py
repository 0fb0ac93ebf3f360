"""Streaming a large trace file: every span once, in whole traces, with bounded reads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from evals.traces_synth import generate, to_otlp_json
from tools.core.errors import InputError
from tools.traces import stream
from tools.traces.config import TraceConfig
from tools.traces.stream import SpanFileStream


def _jsonl(tmp_path: Path, n_traces: int, per_line: int = 50) -> tuple[Path, int]:
    spans = generate(n_traces, seed=3).spans
    path = tmp_path / "traces.jsonl"
    with path.open("w") as f:
        for start in range(0, spans.num_rows, per_line):
            f.write(json.dumps(to_otlp_json(spans.slice(start, per_line))) + "\n")
    return path, spans.num_rows


def test_windows_hold_every_span_once_in_whole_traces(tmp_path: Path) -> None:
    path, n = _jsonl(tmp_path, 400)
    config = TraceConfig(window_s=5.0, max_spans_per_batch=500)
    batches = list(SpanFileStream(path, "otlp-json").batches(config))
    assert len(batches) > 2  # really windowed
    assert sum(b.num_rows for b in batches) == n
    seen: set[str] = set()
    for b in batches:
        ids = set(pc.unique(b["trace_id"]).to_pylist())
        assert not ids & seen  # a trace never straddles two windows here (lag of one window)
        seen |= ids
        assert b.num_rows <= 4 * config.max_spans_per_batch


def test_the_sample_is_seeded_uniform_and_bounded(tmp_path: Path) -> None:
    path, n = _jsonl(tmp_path, 300)
    s = SpanFileStream(path, "otlp-json")
    first = s.sample(40, seed=1)
    assert s.num_rows == n
    assert len(pc.unique(first["trace_id"])) == 40
    assert first.equals(SpanFileStream(path, "otlp-json").sample(40, seed=1))
    other = s.sample(40, seed=2)
    assert set(pc.unique(other["trace_id"]).to_pylist()) != set(
        pc.unique(first["trace_id"]).to_pylist()
    )


def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    path, _ = _jsonl(tmp_path, 50)
    lines = path.read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]  # truncated mid-document
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"^{path}:4: invalid JSON"):
        SpanFileStream(path, "otlp-json").sample(10, seed=0)


def test_one_huge_line_is_refused_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "one.json"
    path.write_text(json.dumps(to_otlp_json(generate(20, seed=0).spans)))
    with pytest.raises(InputError, match=r":1: line longer than"):
        list(stream.iter_lines(path))
