"""Trace reconstruction: tree arrays, and every kind of broken input counted, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.traces.conftest import span, spans
from tools.traces import TraceConfig, analyze_traces
from tools.traces.reconstruct import reconstruct

MS = 1_000_000


def test_tree_arrays_depth_children_and_self_time() -> None:
    t = spans(
        [
            span("t1", "a", None, "A", 0, 100 * MS),
            span("t1", "b", "a", "B", 10 * MS, 40 * MS),
            span("t1", "c", "b", "C", 15 * MS, 35 * MS),
            span("t1", "d", "a", "D", 50 * MS, 90 * MS),
        ]
    )
    f, c = reconstruct(t)
    names = [f.module_names[m] for m in f.module]
    idx = {n.split("::")[0]: i for i, n in enumerate(names)}
    assert f.depth[idx["A"]] == 0 and f.depth[idx["C"]] == 2
    assert f.child_count[idx["A"]] == 2 and f.child_count[idx["B"]] == 1
    assert f.self_ns[idx["A"]] == 30 * MS  # 100 - 30 - 40
    assert f.idle_ns[idx["A"]] == 10 * MS  # longest stretch without a child
    assert c.problems() == {}
    assert c.traces == 1 and c.spans_used == 4


def test_broken_input_is_repaired_and_counted() -> None:
    huge = json.dumps({"blob": "x" * 50_000})
    t = spans(
        [
            span("t1", "a", None, "A", 10 * MS, 100 * MS),
            span("t1", "b", "a", "B", 5 * MS, 50 * MS),  # starts before parent: skew
            span("t1", "b", "a", "B", 5 * MS, 50 * MS),  # duplicate
            span("t1", "o", "gone", "B", 20 * MS, None),  # orphan, never ended
            span("t2", "x", "y", "X", 0, 5 * MS),  # x <-> y cycle
            span("t2", "y", "x", "Y", 1, 4 * MS),
            span("t3", "n", None, "N", 10 * MS, 2 * MS, attrs=huge),  # negative duration
            span("", "e", None, "E", 0, 1),  # no trace id
            span("t4", "s", "s", "S", 0, 1),  # its own parent
        ]
    )
    f, c = reconstruct(t, TraceConfig(skew_tolerance_ms=1.0))
    assert c.spans_in == 9
    assert c.missing_ids == 1 and c.duplicate_spans == 1
    assert c.spans_used == 7 == f.n_spans
    assert c.orphan_spans == 2  # "o" and the self-parented "s"
    assert c.cycles == 2
    assert c.clock_skew == 1
    assert c.unfinished_spans == 1 and c.negative_durations == 1
    assert c.huge_attributes == 1
    assert f.table["attributes"].null_count == f.n_spans
    assert (f.duration_ns >= 0).all()
    assert np.isfinite(f.depth).all()


def test_multi_root_trace_is_a_fork_counter() -> None:
    t = spans([span("t", "a", None, "A", 0, 10), span("t", "b", None, "A", 1, 10)])
    _, c = reconstruct(t)
    assert c.multi_root_traces == 1


def test_empty_table() -> None:
    f, c = reconstruct(pa.Table.from_pylist([]))
    assert f.n_spans == 0 and f.n_traces == 0 and c.spans_in == 0


_ids = st.sampled_from(["a", "b", "c", "d", "e", "", "zz"])
_row = st.fixed_dictionaries(
    {
        "trace_id": st.sampled_from(["t1", "t2", "t3", "", None]),
        "span_id": _ids,
        "parent_id": st.one_of(st.none(), _ids, st.just("root")),
        "service": st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
        "operation": st.sampled_from(["x", "y"]),
        "start_ns": st.one_of(st.none(), st.integers(0, 10**12)),
        "end_ns": st.one_of(st.none(), st.just(0), st.integers(0, 10**12)),
        "status": st.sampled_from(["ok", "error", "unset", None]),
        "attributes": st.one_of(
            st.none(), st.just("{}"), st.just("x" * 20_000), st.just("not json")
        ),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, max_size=40))
def test_random_spans_never_crash_and_add_up(rows: list[dict]) -> None:
    t = spans(rows)
    f, c = reconstruct(t)
    assert c.spans_used + c.missing_ids + c.duplicate_spans == c.spans_in == len(rows)
    assert f.n_spans == c.spans_used
    assert (f.parent < f.n_spans).all()
    assert ((f.parent == -1) | (f.trace_of[np.maximum(f.parent, 0)] == f.trace_of)).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, max_size=30))
def test_random_spans_analyse_without_crash(rows: list[dict]) -> None:
    a = analyze_traces(spans(rows), config=TraceConfig(ae_epochs=2))
    assert len(a.traces) == a.counters.traces
    assert isinstance(a.summary(), str)
