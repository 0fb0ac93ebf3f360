"""JSON Lines logs: field aliases, time formats, round trip and hostile input."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.telemetry.ingest import detect_format, parse_text

HYP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_aliases_and_attributes() -> None:
    lines = [
        {
            "ts": "2023-01-29T08:42:22.383150913Z",
            "level": "warn",
            "msg": "slow query",
            "pod": "ts-order-service-6f6cfc45b-h5m2n",
            "trace_id": "ABC",
            "db": "mysql",
        },
        {"timestamp": 1674981742.5, "severity": "ERROR", "message": "boom", "service": "api"},
        {"@timestamp": "2023-01-29 16:42:22+08:00", "body": {"k": 1}},
    ]
    logs = parse_text("\n".join(json.dumps(x) for x in lines), "a.jsonl").logs.to_pylist()
    assert logs[0]["ts_ns"] == 1674981742383150913  # nanoseconds kept
    assert (logs[0]["service"], logs[0]["severity"]) == ("ts-order-service", "WARN")
    assert logs[0]["trace_id"] == "abc".zfill(32)
    assert json.loads(logs[0]["attributes"]) == {"db": "mysql"}
    assert (logs[1]["ts_ns"], logs[1]["service"]) == (1674981742500000000, "api")
    assert logs[2]["ts_ns"] == 1674981742000000000 and logs[2]["body"] == '{"k": 1}'


@pytest.mark.parametrize(
    "value", [1674981742, 1674981742000, 1674981742000000, 1674981742000000000, "1674981742"]
)
def test_epoch_units_by_magnitude(value: object) -> None:
    line = json.dumps({"time": value, "msg": "x"})
    assert parse_text(line, "e.jsonl").logs.column("ts_ns")[0].as_py() == 1674981742 * 10**9


record = st.fixed_dictionaries(
    {
        "time": st.datetimes(
            min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        "level": st.sampled_from(["info", "ERROR", "Warn", "debug"]),
        "msg": st.text(max_size=40),
        "service": st.text(min_size=1, max_size=10),
        "extra": st.integers(),
    }
)


@HYP
@given(st.lists(record, min_size=1, max_size=8))
def test_round_trip(records: list[dict]) -> None:
    text = "\n".join(json.dumps({**r, "time": r["time"].isoformat()}) for r in records)
    assert detect_format(text) == "jsonl-logs"
    got = parse_text(text, "r.jsonl").logs.to_pylist()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [
        (g["ts_ns"], g["severity"], g["body"], g["service"], json.loads(g["attributes"]))
        for g in got
    ] == [
        (
            (r["time"] - epoch) // timedelta(microseconds=1) * 1000,
            r["level"].upper(),
            r["msg"],
            r["service"],
            {"extra": r["extra"]},
        )
        for r in records
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"time": 1, "msg": "a"}\n{"msg": "no time"}', "l.jsonl:2: no time field"),
        ('{"time": "yesterday", "msg": "a"}', "l.jsonl:1: time: not an ISO 8601 time"),
        ('{"time": 1}', "l.jsonl:1: no message field"),
        ('{"time": 1, "msg": "a"}\n\n[1, 2]', "l.jsonl:3: $: expected an object"),
        ('{"time": 1, "msg": "a"}\n{"time": 2, "msg": ', "l.jsonl:2: invalid JSON"),
    ],
)
def test_bad_lines(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_text(text, "l.jsonl", fmt="jsonl-logs")
    assert str(err.value).startswith(message)


@HYP
@given(st.lists(record, min_size=1, max_size=4), st.data())
def test_truncated_or_mutated_only_raise_input_error(records, data) -> None:
    text = "\n".join(json.dumps({**r, "time": r["time"].isoformat()}) for r in records)
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", "x", "{", "\n", '"', "9" * 30, "null"]))
    with contextlib.suppress(InputError):
        parse_text(text[:cut] + junk + text[cut + 1 :], "f.jsonl", fmt="jsonl-logs")


def test_lone_surrogate_escapes_become_replacement_characters() -> None:
    text = '{"ts": 1, "msg": "a\\ud800b \\ud83d\\ude00"}'
    assert parse_text(text, "s.jsonl").logs.column("body")[0].as_py() == "a\ufffdb \U0001f600"
