"""The one trace model: trees in any row order, self and wire time, call edges, the error rule."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.telemetry.model import SPAN_SCHEMA
from tools.telemetry.trace_model import (
    ERROR_SQL,
    SpanForest,
    error_spans,
    first_rows,
    has_parent_id,
    service_calls,
)

MS = 1_000_000


def _table(rows: list[dict]) -> pa.Table:
    full = []
    for r in rows:
        row = {f.name: r.get(f.name) for f in SPAN_SCHEMA}
        row.setdefault("trace_id", "t1")
        if row["end_ns"] is not None and row["duration_ns"] is None:
            row["duration_ns"] = row["end_ns"] - row["start_ns"]
        full.append(row)
    return pa.Table.from_pylist(full, schema=SPAN_SCHEMA)


def _span(sid: str, parent: str | None, svc: str, start: int, end: int | None, **kw) -> dict:
    return {
        "trace_id": kw.pop("trace", "t1"),
        "span_id": sid,
        "parent_id": parent,
        "service": svc,
        "operation": kw.pop("op", "op"),
        "start_ns": start * MS,
        "end_ns": None if end is None else end * MS,
        **kw,
    }


def _shop() -> list[dict]:
    """frontend -> (client span) -> checkout -> payment; frontend also runs a local step."""
    return [
        _span("a", None, "frontend", 0, 100),
        _span("b", "a", "frontend", 5, 85, kind="client"),  # client span of frontend
        _span("c", "b", "checkout", 10, 80),
        _span("d", "c", "payment", 20, 50, status="error"),
        _span("e", "a", "frontend", 86, 96),
    ]


def test_trees_do_not_depend_on_row_order() -> None:
    rows = _shop()
    forest = SpanForest.build(_table(rows))
    shuffled = SpanForest.build(_table(rows[::-1]))
    ids = _table(rows)["span_id"].to_pylist()
    parent_of = {ids[i]: (ids[p] if p >= 0 else None) for i, p in enumerate(forest.parent)}
    rev = _table(rows[::-1])["span_id"].to_pylist()
    assert parent_of == {
        rev[i]: (rev[p] if p >= 0 else None) for i, p in enumerate(shuffled.parent)
    }
    assert parent_of == {"a": None, "b": "a", "c": "b", "d": "c", "e": "a"}
    assert forest.depth.tolist() == [0, 1, 2, 3, 1]
    assert forest.child_count.tolist() == [2, 1, 1, 0, 0]


def test_self_time_and_wire_time() -> None:
    forest = SpanForest.build(_table(_shop()))
    ms = forest.self_ns / MS
    assert ms.tolist() == [100 - 80 - 10, 10, 70 - 30, 30, 10]
    # b is frontend's client span: its 10 ms are wire time on the frontend -> checkout edge
    assert forest.client.tolist() == [False, True, False, False, False]
    wire = forest.wire_ns / MS
    assert wire[2] == 10 and np.isnan(wire[[0, 1, 3, 4]]).all()
    # checkout -> payment has no client span in between: no wire time is invented
    assert not forest.client[2]


def test_parallel_children_count_once_in_self_time() -> None:
    """A supervisor waiting 200 ms on three parallel 100 ms workers worked 100 ms itself."""
    rows = [
        _span("s", None, "supervisor", 0, 200),
        _span("w1", "s", "worker", 50, 150),
        _span("w2", "s", "worker", 50, 150),
        _span("w3", "s", "worker", 60, 140),
    ]
    forest = SpanForest.build(_table(rows))
    assert (forest.self_ns / MS).tolist() == [100, 100, 100, 80]


def test_children_outside_their_parent_count_only_inside_it() -> None:
    rows = [
        _span("p", None, "api", 10, 110),
        _span("early", "p", "db", 0, 30),  # clock skew: starts before its parent
        _span("late", "p", "db", 100, 150),  # ends after its parent
        _span("gap", "p", "db", 40, 60),
    ]
    forest = SpanForest.build(_table(rows))
    assert forest.self_ns[0] / MS == 100 - 20 - 10 - 20


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(-20, 120), st.integers(0, 80)),
        min_size=1,
        max_size=12,
    )
)
def test_self_time_is_the_time_no_child_ran(kids: list[tuple[int, int, int]]) -> None:
    """Against a millisecond-by-millisecond count: 4 parents [0, 100) ms, random children
    (shifted by 1 s: an end at 0 would mean "never ended")."""
    rows = [_span(f"p{k}", None, "svc", 1000, 1100) for k in range(4)]
    rows += [
        _span(f"c{i}", f"p{k}", "svc", 1000 + s, 1000 + s + d) for i, (k, s, d) in enumerate(kids)
    ]
    forest = SpanForest.build(_table(rows))
    for k in range(4):
        busy = {ms for kk, s, d in kids if kk == k for ms in range(s, s + d) if 0 <= ms < 100}
        assert forest.self_ns[k] == (100 - len(busy)) * MS


def test_broken_input_is_linked_as_far_as_it_goes() -> None:
    rows = [
        _span("r", None, "a", 0, 10),
        _span("o", "never-exported", "b", 1, 5),  # orphan
        _span("s", "s", "c", 1, 2),  # points at itself
        _span("x", "y", "d", 1, 2),  # x <-> y: a cycle
        _span("y", "x", "d", 1, 2),
        _span("z", "0000000000000000", "e", 0, 3),  # all-zero parent id: a root
        _span("h", "r", "a", 2, None),  # never ended: runs to the trace's end
    ]
    forest = SpanForest.build(_table(rows))
    assert forest.orphan.tolist() == [False, True, True, True, True, False, False]
    assert forest.cyclic.tolist() == [False, False, False, True, True, False, False]
    assert forest.roots.tolist() == [True, False, False, False, False, True, False]
    assert has_parent_id(_table(rows)).tolist() == [False, True, True, True, True, False, True]
    assert forest.unfinished[6] and forest.duration_ns[6] == 8 * MS


def test_a_span_exported_twice_is_one_span() -> None:
    rows = _shop()
    doubled = _table([*rows, rows[2]])  # checkout's span arrives twice
    forest = SpanForest.build(doubled)
    assert forest.first.tolist() == [0, 1, 2, 3, 4, 2]
    assert forest.parent[3] == 2  # payment's parent is the first copy
    assert forest.self_ns[5] == forest.self_ns[2] == 40 * MS  # both copies see the child
    assert first_rows(doubled).tolist() == [0, 1, 2, 3, 4]


def test_duration_from_duration_column_when_no_end() -> None:
    row = _span("a", None, "svc", 0, None)
    row["duration_ns"] = 7 * MS
    forest = SpanForest.build(_table([row]))
    assert forest.duration_ns.tolist() == [7 * MS] and not forest.unfinished[0]


def test_service_from_pod_when_the_service_is_missing() -> None:
    rows = [
        _span("a", None, None, 0, 10, pod="frontend-579b9bff58-t2dbm"),
        _span("b", "a", "cart", 1, 5),
    ]
    edges = service_calls(SpanForest.build(_table(rows)))
    assert [(e.caller, e.callee, e.calls) for e in edges] == [("frontend", "cart", 1)]


def test_service_calls_count_calls_and_errors() -> None:
    rows = _shop()
    rows.append(_span("f", "c", "payment", 55, 60))
    edges = service_calls(SpanForest.build(_table(rows)))
    assert [(e.caller, e.callee, e.calls, e.errors) for e in edges] == [
        ("checkout", "payment", 2, 1),
        ("frontend", "checkout", 1, 0),
    ]


@pytest.mark.parametrize(
    ("status", "code", "kind", "failed"),
    [
        ("error", None, None, True),
        ("ERROR", "200", None, True),
        ("ok", "500", None, False),  # the application said OK: it wins over a code
        ("unset", "500", None, True),
        (None, "503", "server", True),
        ("unset", "404", "server", False),  # a 4xx is the caller's fault ...
        ("unset", "404", "client", True),  # ... and an error on the caller's span
        ("unset", "302", "client", False),
        ("unset", "0", None, False),  # gRPC OK
        ("unset", "14", None, True),  # gRPC UNAVAILABLE
        ("unset", "TIMEOUT", None, True),
        ("unset", "STATUS_CODE_OK", None, False),
        ("unset", "", None, False),
        ("unset", None, None, False),
    ],
)
def test_one_error_definition(
    status: str, code: str | None, kind: str | None, failed: bool
) -> None:
    table = _table([_span("a", None, "svc", 0, 1, status=status, error_code=code, kind=kind)])
    assert error_spans(table).tolist() == [failed]
    assert _sql_errors(table) == [failed]


def _sql_errors(table: pa.Table) -> list[bool]:
    con = duckdb.connect()
    con.register("spans", table)
    rows = con.execute(f"SELECT {ERROR_SQL} FROM spans").fetchall()
    con.close()
    return [bool(r[0]) for r in rows]


_CODES = st.one_of(
    st.none(),
    st.integers(-5, 700).map(str),
    st.sampled_from(["OK", "ok", " 500 ", "\t0", "+7", "TIMEOUT", "error.type", "UNSET", "x"]),
    st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "ok", "OK", "error", "Error", "unset", ""]),
            _CODES,
            st.sampled_from([None, "client", "server", "CLIENT", "internal"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_sql_and_columnar_error_rules_agree(rows: list[tuple]) -> None:
    table = _table(
        [
            _span(f"s{i}", None, "svc", 0, 1, status=s, error_code=c, kind=k)
            for i, (s, c, k) in enumerate(rows)
        ]
    )
    assert error_spans(table).tolist() == _sql_errors(table)


def test_empty_table() -> None:
    forest = SpanForest.build(SPAN_SCHEMA.empty_table())
    assert forest.n_spans == 0 and forest.n_traces == 0
    assert service_calls(forest) == [] and error_spans(SPAN_SCHEMA.empty_table()).size == 0
