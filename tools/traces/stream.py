"""Trace files larger than memory, one window at a time.

Why: ``parse_file`` holds a whole file (text, documents, columns) to store it atomically; a trace
file of several GB to *analyse* needs no such thing. A file of JSON Lines — one OTLP export
request or Jaeger document per line, what the OpenTelemetry collector's file exporter writes —
is read line by line (each line capped, so one huge line cannot exhaust memory) and handed on as
span tables of whole traces, a window at a time, so what the analysis holds follows the window,
not the file.

Two passes, both streaming: the first checks every line (a bad line is one error naming the
file and line before anything is analysed or stored) and keeps a seeded uniform sample of traces
to learn normal behaviour from — the ``max_traces`` trace ids of smallest keyed hash, a
bottom-k sample, so memory holds at most ~2k traces whatever the file size; the second yields
the windows. Duplicate spans are dropped within a window (the whole-file readers drop them file
wide; a file-wide set of ids would grow with the file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import InputError
from tools.telemetry.ingest import jaeger_fast, jaeger_json, otlp_fast, otlp_json
from tools.telemetry.ingest.common import Counter, Fail, span_rows
from tools.telemetry.model import SPAN_SCHEMA
from tools.traces.analyze import iter_batches
from tools.traces.config import TraceConfig

STREAM_ABOVE_BYTES = 256 * 2**20  # smaller files are read whole, as the store reads them
MAX_LINE_BYTES = 64 * 2**20  # one export request; the collector's batches are far smaller


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line, each read with a bounded buffer."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    with f:
        number = 0
        while line := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    f"line longer than {MAX_LINE_BYTES // 2**20} MiB: a file this large must "
                    "hold one export request per line (JSON Lines)",
                    path=str(path),
                    line=number,
                )
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", path=str(path), line=number) from None
            if text.strip():
                yield number, text


def _spans(fmt: str, text: str, fail: Fail) -> pa.Table:
    """One line's spans, as the whole-file reader of ``fmt`` reads a document."""
    if fmt == "otlp-json":
        acc = otlp_json.OtlpAccumulator()
        if not otlp_fast.add_document(text, acc, fail):
            otlp_json.add_document(_json(text, fail), acc, fail)
        return acc.spans.table()
    rows, seen, counter = span_rows(), set(), Counter()
    if not jaeger_fast.add_document(text, rows, seen, counter):
        jaeger_json.add_document(_json(text, fail), rows, seen, counter, fail)
    return rows.table()


def _json(text: str, fail: Fail) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at column {exc.colno}: {exc.msg}") from None


def _dedup(spans: pa.Table) -> pa.Table:
    keys = pc.binary_join_element_wise(spans["trace_id"], spans["span_id"], ":")
    unique = pc.unique(keys)
    if len(unique) == spans.num_rows:
        return spans
    first = pc.index_in(unique, keys)  # the first row of every (trace, span) pair
    return spans.take(pc.sort_indices(first))


def _trace_hash(trace_ids: pa.Array, seed: int) -> np.ndarray:
    key = str(seed).encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8, key=key).digest(), "big")
            for t in trace_ids.to_pylist()
        ),
        dtype=np.uint64,
        count=len(trace_ids),
    )


def _bottom(kept: list[pa.Table], k: int) -> tuple[list[pa.Table], pa.Scalar | None]:
    """The spans of the ``k`` traces of smallest hash, and the hash cut that keeps them."""
    merged = pa.concat_tables(kept)
    hashes = np.unique(merged["_h"].to_numpy())
    if len(hashes) <= k:
        return [merged], None
    cut = pa.scalar(hashes[k], pa.uint64())
    return [merged.filter(pc.less(merged["_h"], cut))], cut


@dataclass
class SpanFileStream:
    """The spans of one large JSON Lines trace file, for :func:`tools.traces.analyze_traces`."""

    path: Path
    fmt: str
    num_rows: int = 0

    def _tables(self) -> Iterator[pa.Table]:
        for number, text in iter_lines(self.path):
            yield _spans(self.fmt, text, Fail(str(self.path), number))

    def sample(self, max_traces: int, seed: int) -> pa.Table:
        """Pass 1: check every line and keep the spans of a seeded uniform sample of traces."""
        kept: list[pa.Table] = []
        held, cut = 0, None
        self.num_rows = 0
        for table in self._tables():
            self.num_rows += table.num_rows
            if table.num_rows == 0:
                continue
            ids = pc.unique(table["trace_id"])
            span_hash = pa.array(_trace_hash(ids, seed)).take(pc.index_in(table["trace_id"], ids))
            if cut is not None:
                keep = pc.less(span_hash, cut)
                table, span_hash = table.filter(keep), span_hash.filter(keep)
            if table.num_rows:
                kept.append(table.append_column("_h", span_hash))
                held += len(pc.unique(span_hash))
            if held > 2 * max_traces:
                kept, cut = _bottom(kept, max_traces)
                held = max_traces
        if not kept:
            return SPAN_SCHEMA.empty_table()
        kept, _ = _bottom(kept, max_traces)
        return _dedup(pa.concat_tables(kept).drop_columns(["_h"]))

    def batches(self, config: TraceConfig) -> Iterator[pa.Table]:
        """Pass 2: whole traces a window at a time; a trace is held back until no span of it can
        still come (its first span is a window older than the newest span seen)."""
        pending: list[pa.Table] = []
        held = 0
        horizon_ns = int(config.window_s * 1e9)
        self.num_rows = 0
        for table in self._tables():
            self.num_rows += table.num_rows
            pending.append(table)
            held += table.num_rows
            if held < config.max_spans_per_batch:
                continue
            buffered = _dedup(pa.concat_tables(pending))
            first = buffered.group_by("trace_id").aggregate([("start_ns", "min")])
            newest = pc.max(buffered["start_ns"]).as_py() or 0
            old = pc.less(first["start_ns_min"], newest - horizon_ns)
            ready_ids = first["trace_id"].filter(old)
            if len(ready_ids) == 0 and held < 4 * config.max_spans_per_batch:
                pending = [buffered]
                continue
            is_ready = pc.is_in(buffered["trace_id"], ready_ids)
            if len(ready_ids) == 0:  # nothing old enough but the buffer is full: let it go
                is_ready = pa.array(np.ones(buffered.num_rows, dtype=bool))
            yield from iter_batches(buffered.filter(is_ready), config)
            rest = buffered.filter(pc.invert(is_ready))
            pending, held = [rest], rest.num_rows
        if pending:
            yield from iter_batches(_dedup(pa.concat_tables(pending)), config)


def open_spans(path: Path) -> SpanFileStream | None:
    """A stream over ``path`` when it is too large to read whole, else ``None``; the format
    (OTLP or Jaeger JSON) comes from the first line, as :func:`detect_format` tells it."""
    from tools.telemetry.ingest import detect_format

    try:
        if path.stat().st_size <= STREAM_ABOVE_BYTES:
            return None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    first = next(iter_lines(path), None)
    fmt = detect_format(first[1]) if first is not None else None
    if fmt not in ("otlp-json", "jaeger-json"):
        raise InputError(
            "not OTLP or Jaeger JSON Lines (one export request or trace document per line)",
            path=str(path),
            line=first[0] if first is not None else None,
        )
    return SpanFileStream(path, fmt)
