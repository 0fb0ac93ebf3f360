"""The column-at-a-time JSONL log reader: the walker's rows exactly, or it steps aside having
added nothing."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.telemetry.fast_readers import HYP, Rows, assert_agrees, assert_error, fields, walked
from tools.telemetry.ingest import jsonl_fast, jsonl_logs
from tools.telemetry.ingest.common import Counter, Fail, log_rows

iso_times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31)).map(
    datetime.isoformat
)


def _records(variants: bool) -> st.SearchStrategy[object]:
    """Log records: one logger's shape, or mixed with what the walker also accepts (or
    refuses); half the examples are canonical so the fast path is tested with rows."""
    field = fields(variants)
    times = field(
        st.one_of(
            iso_times,
            iso_times.map(lambda s: s + "Z"),
            iso_times.map(lambda s: s + ".123456789Z"),
            st.integers(0, 2**62),
        ),
        *["2023-02-30T00:00:00Z", "2023-11-14T22:13:05+02:00", "1.5e9", "x", 1.7e9, True, None],
        *["1900-01-01T00:00:00.1234567890Z", 2**70, "2023-11-14 22:13:05", "0001-01-01T00:00:00"],
    )
    values = st.one_of(
        st.text(max_size=6), st.integers(-5, 600), st.booleans(), st.none(), st.just({"a": [1]})
    )
    keys = st.sampled_from(
        [
            *("ts", "time", "level", "severity", "msg", "message", "body", "service", "app"),
            *("pod", "trace_id", "traceId", "span_id", "user"),
        ]
    )
    record = st.fixed_dictionaries(
        {"ts": times, "msg": field(st.text(max_size=8), None, {"k": 1}, 5)},
        optional={
            "level": values,
            "service": values,
            "pod": st.sampled_from(["cart-7d9f-1", "x", None]),
            "trace_id": field(st.binary(min_size=16, max_size=16).map(bytes.hex), "ABC", "zz"),
            "span_id": st.one_of(st.binary(min_size=8, max_size=8).map(bytes.hex), st.just(7)),
            "extra": st.dictionaries(keys, values, max_size=3),
        },
    ).map(lambda r: {**r, **r.pop("extra", {})})
    return record if not variants else st.one_of(record, st.sampled_from([[1], "x", 3, {}]))


lines = st.one_of(
    st.lists(_records(variants=False), max_size=6),
    st.lists(_records(variants=True), max_size=6),
)


def _walk(records: list) -> Rows:
    rows, counter = log_rows(), Counter()
    for i, obj in enumerate(records, start=1):
        jsonl_logs.add_line(obj, rows, counter, Fail("f.jsonl", i))
    return rows.table(), counter


def _fast(records: list) -> tuple[bool, Rows]:
    rows, counter = log_rows(), Counter()
    taken = jsonl_fast.add_lines([json.dumps(r) for r in records], rows, counter)
    return taken, (rows.table(), counter)


@HYP
@given(lines)
def test_fast_reader_gives_the_walkers_rows_or_steps_aside(records: list) -> None:
    assert_agrees(*_fast(records), walked(lambda: _walk(records)))


def test_a_loggers_lines_take_the_fast_path() -> None:
    """What structured loggers write must not fall back (the point of the reader)."""
    records = [
        {
            "ts": f"2023-11-14T22:13:{i % 60:02d}.{i:06d}Z",
            "level": "info",
            "msg": "x" * (70_000 if i == 3 else 5),
            "pod": "cart-7d9f-1",
            "trace_id": "ABCDEF",
            "user": f"u{i}",
        }
        for i in range(20)
    ]
    taken, fast = _fast(records)
    assert taken
    assert_agrees(taken, fast, _walk(records))
    assert fast[1].truncated == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"msg": "no time"}', "f.jsonl:3: no time field"),
        ('{"ts": "2023-02-30T00:00:00Z", "msg": "x"}', "f.jsonl:3: ts: not an ISO 8601 time"),
        ('{"ts": 1, "level": "info"}', "f.jsonl:3: no message field"),
        ('{"ts": 1, "msg": "x"', "f.jsonl:3: invalid JSON"),
    ],
)
def test_bad_input_is_still_the_walkers_one_line_error(bad: str, message: str) -> None:
    good = json.dumps({"ts": "2023-11-14T22:13:05Z", "msg": "ok"})
    assert_error(f"{good}\n\n{bad}\n{good}\n", "f.jsonl", "jsonl-logs", message)
