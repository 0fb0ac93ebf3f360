"""Property tests for the dataset parsers: timestamps, pod metric rows, log records, span rows.

Every generated file is written the way the datasets store it (plain CSV or gzip), read back
through the real readers, and compared with what the data card says the row means. Garbled or
truncated input must end in a ``DatasetError``/``InputError`` naming the file, never anything
else.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.core.errors import DatasetError, InputError
from tools.telemetry.datasets.nezha_files import (
    POD_METRIC_COLUMNS,
    POD_METRIC_NAMES,
    nezha_metric_name,
    read_logs,
    read_pod_metrics,
    read_spans,
)
from tools.telemetry.datasets.nezha_logs import decode_logs, decode_logs_arrow, decode_logs_duckdb
from tools.telemetry.datasets.sockshop import read_sockshop_metrics, sockshop_metric
from tools.telemetry.datasets.timeparse import parse_wallclock_ns, wallclock_ns
from tools.telemetry.model import service_from_pod

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
fractions = st.text(alphabet="0123456789", min_size=0, max_size=9)
pod_names = st.builds(
    lambda svc, rs, sfx: f"{svc}-{rs}-{sfx}",
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z]", fullmatch=True),
    st.from_regex(r"[a-z0-9]{8,10}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{5}", fullmatch=True),
)
safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=60
)


def _ns(t: datetime, frac: str) -> int:
    return int(t.replace(microsecond=0).timestamp()) * 10**9 + int(frac.ljust(9, "0") or "0")


def _write(path: Path, text: str, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# timestamps
# ---------------------------------------------------------------------------------------------


def _go(t: datetime, frac: str, mono: float | None, offset_min: int = 0) -> str:
    local = t + timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    off = f"{sign}{abs(offset_min) // 60:02d}{abs(offset_min) % 60:02d}"
    text = local.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + f" {off} UTC"
    return text + (f" m=+{mono:.9f}" if mono is not None else "")


@FAST
@given(
    t=moments,
    frac=fractions,
    mono=st.none() | st.floats(0, 1e6),
    offset_min=st.integers(-14 * 60, 14 * 60),
)
def test_go_time_strings(t: datetime, frac: str, mono: float | None, offset_min: int) -> None:
    text = _go(t, frac, mono, offset_min)
    expected = _ns(t, frac)
    assert parse_wallclock_ns(text) == expected
    assert wallclock_ns(pa.array([text, text]), source="x").to_pylist() == [expected] * 2


@FAST
@given(t=moments, frac=fractions, zone=st.sampled_from(["Z", "", "+00:00", "+0800", "-05:30"]))
def test_rfc3339_strings_without_zone_are_utc(t: datetime, frac: str, zone: str) -> None:
    offset = 0
    if zone not in ("Z", ""):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:]))
    local = t.astimezone(timezone(timedelta(minutes=offset)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + zone
    assert parse_wallclock_ns(text) == _ns(t, frac)


@FAST
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_garbled_time_strings_raise_input_error_naming_the_line(texts: list[str]) -> None:
    try:
        got = wallclock_ns(pa.array(texts), source="f.csv", first_line=2).to_pylist()
    except InputError as exc:
        assert exc.path == "f.csv" and exc.line is not None
        bad = exc.line - 2
        with pytest.raises(InputError):
            parse_wallclock_ns(texts[bad])
    else:
        assert got == [parse_wallclock_ns(t) for t in texts]


# ---------------------------------------------------------------------------------------------
# pod metric rows
# ---------------------------------------------------------------------------------------------

metric_values = st.floats(allow_infinity=False, width=64) | st.just(math.nan)


@FAST
@given(
    pod=pod_names,
    rows=st.lists(
        st.tuples(moments, fractions, st.lists(metric_values, min_size=19, max_size=19)),
        min_size=1,
        max_size=6,
    ),
    gz=st.booleans(),
)
def test_pod_metric_rows_become_long_series(tmp_path_factory, pod, rows, gz) -> None:
    header = ["Time", "TimeStamp", "PodName", *POD_METRIC_COLUMNS]
    body = [
        [_go(t, frac, 1.5), 1861140279, pod, *["NaN" if math.isnan(v) else repr(v) for v in vals]]
        for t, frac, vals in rows
    ]
    path = _write(tmp_path_factory.mktemp("m") / f"{pod}_metric.csv", _csv(header, body), gz)
    table = read_pod_metrics(path)
    expected = {
        (POD_METRIC_NAMES[c], _ns(t, frac)): v * nezha_metric_name(c, prefix="pod_")[1]
        for t, frac, vals in rows
        for c, v in zip(POD_METRIC_COLUMNS, vals, strict=True)
        if not math.isnan(v)
    }
    got = {(r["name"], r["ts_ns"]): r["value"] for r in table.to_pylist()}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=0)
    if table.num_rows:
        assert set(table["service"].to_pylist()) == {service_from_pod(pod)}
        labels = json.loads(table["labels"][0].as_py())
        assert labels == {"pod": pod, "service": service_from_pod(pod)}


@FAST
@given(data=st.binary(max_size=400), cut=st.integers(0, 400), gz=st.booleans())
def test_garbled_metric_files_fail_cleanly(tmp_path_factory, data, cut, gz) -> None:
    header = ",".join(["Time", "TimeStamp", "PodName", *POD_METRIC_COLUMNS]) + "\n"
    raw = (header.encode() + data)[: len(header) + cut]
    path = tmp_path_factory.mktemp("g") / "p-abcdefgh-abcde_metric.csv"
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)[: max(1, cut)]
    path.write_bytes(raw)
    try:
        table = read_pod_metrics(path)
    except (InputError, DatasetError) as exc:
        assert str(path) in str(exc)
    else:
        assert table.num_rows >= 0


def test_metric_name_mapping_is_prometheus_valid() -> None:
    assert POD_METRIC_NAMES["CpuUsageRate(%)"] == "pod_cpu_usage_rate_percent"
    assert POD_METRIC_NAMES["PodServerLatencyP90(s)"] == "pod_server_latency_p90_seconds"
    assert nezha_metric_name("MemoryUsage(Mi)", prefix="pod_") == ("pod_memory_usage_bytes", 2**20)
    assert nezha_metric_name("CpuUsage(m)", prefix="pod_") == ("pod_cpu_usage_cores", 0.001)
    with pytest.raises(InputError):
        nezha_metric_name("Cpu Usage(parsecs)", prefix="pod_")


# ---------------------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------------------

LOG_HEADER = [
    "Timestamp",
    "TimeUnixNano",
    "Node",
    "PodName",
    "Container",
    "TraceID",
    "SpanID",
    "Log",
]
LEVELS = st.sampled_from(["INFO", "WARN", "ERROR", "DEBUG"])


@st.composite
def log_rows(draw):
    t = draw(moments)
    frac = draw(st.text(alphabet="0123456789", min_size=6, max_size=9))
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}Z"
    level = draw(LEVELS)
    msg = draw(safe_text)
    if draw(st.booleans()):  # OB: the application line is JSON
        line = json.dumps({"timestamp": stamp, "severity": level.lower(), "message": msg})
        expected_body = msg
    else:  # TT: Logback text, clock at UTC+8
        line = f"16:42:22.382 {level}  t.s.TravelServiceImpl#532 {msg}".rstrip("\r\n")
        expected_body = line
    record = json.dumps({"log": line + "\n", "stream": "stdout", "time": stamp})
    broken_ns = draw(st.booleans())
    nano = -6795364578871345152 if broken_ns else _ns(t, frac)
    pod = draw(pod_names)
    trace_id = draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
    row = [stamp, nano, "33.33.33.116", pod, "server", trace_id, "439bc949a9eeb0cc", record]
    return row, (_ns(t, frac), level, expected_body, trace_id, service_from_pod(pod))


@FAST
@given(rows=st.lists(log_rows(), min_size=1, max_size=8), gz=st.booleans())
def test_docker_json_log_records(tmp_path_factory, rows, gz) -> None:
    header = LOG_HEADER
    text = _csv(header, [r for r, _ in rows])
    path = _write(tmp_path_factory.mktemp("l") / "08_43_log.csv", text, gz)
    got = read_logs(path).to_pylist()
    assert len(got) == len(rows)
    for rec, (_, (ts, level, body, trace_id, service)) in zip(got, rows, strict=True):
        assert rec["ts_ns"] == ts
        assert rec["severity"] == level
        assert rec["body"] == body
        assert rec["trace_id"] == trace_id and rec["span_id"] == "439bc949a9eeb0cc"
        assert rec["service"] == service
        assert json.loads(rec["attributes"]) == {
            "container": "server",
            "node": "33.33.33.116",
            "stream": "stdout",
        }


def test_log_field_that_is_not_docker_json_keeps_its_text(tmp_path: Path) -> None:
    header = LOG_HEADER
    row = ["2023-01-29T09:33:14.716", "-1", "n", "a-abcdefgh-abcde", "c", "", "", '{"log": "cut']
    table = read_logs(_write(tmp_path / "x_log.csv", _csv(header, [row]), False))
    rec = table.to_pylist()[0]
    assert rec["body"] == '{"log": "cut' and rec["severity"] is None
    assert rec["ts_ns"] == _ns(datetime(2023, 1, 29, 9, 33, 14, tzinfo=UTC), "716")
    assert rec["trace_id"] is None


# ---------------------------------------------------------------------------------------------
# spans
# ---------------------------------------------------------------------------------------------


@st.composite
def span_rows(draw):
    start = draw(st.integers(10**18, 2 * 10**18))
    dur = draw(st.integers(0, 10**11))
    parent = draw(st.sampled_from(["root", "a4424f20bffee416"]))
    pod = draw(pod_names)
    op = draw(safe_text)
    row = [
        draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        draw(st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
        parent,
        pod,
        op,
        start,
        start + dur,
        dur // 1000,
    ]
    return row


@FAST
@given(rows=st.lists(span_rows(), min_size=1, max_size=10), gz=st.booleans())
def test_trace_rows(tmp_path_factory, rows, gz) -> None:
    header = [
        "TraceID",
        "SpanID",
        "ParentID",
        "PodName",
        "OperationName",
        "StartTimeUnixNano",
        "EndTimeUnixNano",
        "Duration",
    ]
    path = _write(tmp_path_factory.mktemp("t") / "08_43_trace.csv", _csv(header, rows), gz)
    got = read_spans(path).to_pylist()
    assert len(got) == len(rows)
    for span, row in zip(got, rows, strict=True):
        assert span["trace_id"] == row[0] and span["span_id"] == row[1]
        assert span["parent_id"] == (None if row[2] == "root" else row[2])
        assert span["pod"] == row[3] and span["service"] == service_from_pod(row[3])
        assert span["operation"] == row[4]
        assert (span["start_ns"], span["end_ns"]) == (row[5], row[6])
        assert span["duration_ns"] == row[6] - row[5]
        assert span["status"] == "unset"


@FAST
@given(cut=st.integers(1, 300), junk=st.binary(max_size=30))
def test_truncated_or_garbled_trace_files_fail_cleanly(tmp_path_factory, cut, junk) -> None:
    text = (
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
        "b0103bb0161ad7fa352fe1828eeb643a,520b067330e3ede5,root,ts-gateway-service-6f6cfc45b-h5m2n,"
        "/*,1674981768697000000,1674981769015316530,318316\n"
    )
    raw = gzip.compress(text.encode())[:cut] + junk
    path = tmp_path_factory.mktemp("tg") / "08_43_trace.csv.gz"
    path.write_bytes(raw)
    try:
        table = read_spans(path)
    except (InputError, DatasetError) as exc:
        assert str(path) in str(exc)
    else:
        assert table.num_rows <= 1


def test_bad_span_value_names_the_line(tmp_path: Path) -> None:
    text = (
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
        "t,s,root,p,op,,2,0\n"
        "t,s2,s,p,op,notanumber,2,0\n"
    )
    with pytest.raises(InputError, match=r"StartTimeUnixNano.*notanumber") as info:
        read_spans(_write(tmp_path / "x_trace.csv", text, True))
    assert info.value.path.endswith("x_trace.csv.gz") and info.value.line == 3


# ---------------------------------------------------------------------------------------------
# Sock Shop
# ---------------------------------------------------------------------------------------------


@FAST
@given(column=st.text(max_size=25))
def test_sockshop_columns_are_known_or_rejected(column: str) -> None:
    try:
        name, labels = sockshop_metric(column)
    except InputError:
        return
    assert name.startswith(("container_", "service_")) and labels["service"]


@FAST
@given(
    rows=st.lists(st.tuples(st.integers(0, 2**31), st.floats(0, 1e12)), min_size=1, max_size=5),
    gz=st.booleans(),
)
def test_sockshop_rows(tmp_path_factory, rows, gz) -> None:
    text = _csv(["time", "carts-db_cpu", "shipping_lat_90"], [[t, v, v] for t, v in rows])
    path = _write(tmp_path_factory.mktemp("s") / "normal.csv", text, gz)
    table = read_sockshop_metrics(path)
    got = sorted((r["name"], r["service"], r["ts_ns"], r["value"]) for r in table.to_pylist())
    expected = sorted(
        [("container_cpu_usage_percent", "carts-db", t * 10**9, v) for t, v in rows]
        + [("service_latency_p90_seconds", "shipping", t * 10**9, v) for t, v in rows]
    )
    assert got == expected
    assert pc.all(pc.is_null(table["pod"])).as_py()


@st.composite
def log_fields(draw) -> str:
    """A ``Log`` cell: usually a Docker record, sometimes odd or broken."""
    msg = draw(safe_text)
    level = draw(LEVELS | st.sampled_from(["warning", "Info", ""]))
    kind = draw(st.sampled_from(["ob", "tt", "no-stream", "app-json-no-severity", "raw"]))
    if kind == "raw":
        return draw(safe_text)
    if kind in ("ob", "app-json-no-severity"):
        app = (
            {"message": msg}
            if kind == "app-json-no-severity"
            else {"severity": level, "message": msg}
        )
        line = json.dumps(app, ensure_ascii=draw(st.booleans()))
    else:
        line = f"16:42:22.382 {level} c.s.ContactsServiceImpl#31 {msg}"
    record = {"log": line + "\n", "time": "2023-01-29T08:42:22Z"}
    if kind != "no-stream":
        record["stream"] = draw(st.sampled_from(["stdout", "stderr"]))
    return json.dumps(record, ensure_ascii=draw(st.booleans()))


@FAST
@given(cells=st.lists(log_fields(), min_size=1, max_size=12), node=st.sampled_from(["", "n1"]))
def test_arrow_and_duckdb_log_decoders_agree(cells: list[str], node: str) -> None:
    n = len(cells)
    raw = pa.table(
        {
            "ts_ns": pa.array(range(n), pa.int64()),
            "service": pa.array(["svc"] * n),
            "PodName": pa.array(["svc-abcdefgh-abcde"] * n),
            "Container": pa.array(["server"] * n),
            "Node": pa.array([node] * n),
            "TraceID": pa.array(["t"] * n),
            "SpanID": pa.array([""] * n),
            "Log": pa.array(cells),
        }
    )
    slow = decode_logs_duckdb(raw)
    fast = decode_logs_arrow(raw)
    if fast is not None:
        for name in slow.column_names:
            assert fast[name].to_pylist() == slow[name].to_pylist(), name
    assert decode_logs(raw).to_pylist() == slow.to_pylist()


def test_clean_records_take_the_arrow_path_and_garbled_ones_do_not() -> None:
    ob = json.dumps({"log": json.dumps({"severity": "warning", "message": "m"}) + "\n"})
    tt = json.dumps({"log": "16:42:22.382 ERROR  c.s.X#1 boom\n", "stream": "stdout"})
    raw = pa.table(
        {
            "ts_ns": pa.array([1, 2], pa.int64()),
            "service": ["a", "b"],
            "PodName": ["a-abcdefgh-abcde", "b-abcdefgh-abcde"],
            "Container": ["server", "server"],
            "Node": ["n", "n"],
            "TraceID": ["t", ""],
            "SpanID": ["s", ""],
            "Log": [ob, tt],
        }
    )
    fast = decode_logs_arrow(raw)
    assert fast is not None
    assert fast.to_pylist() == decode_logs_duckdb(raw).to_pylist()
    assert fast["severity"].to_pylist() == ["WARNING", "ERROR"]
    assert fast["body"].to_pylist() == ["m", "16:42:22.382 ERROR  c.s.X#1 boom"]
    garbled = raw.set_column(7, "Log", pa.array([ob, tt[:-3]]))
    assert decode_logs_arrow(garbled) is None
    assert decode_logs(garbled)["body"].to_pylist() == ["m", tt[:-3]]


def test_bad_fallback_timestamp_names_its_file_line(tmp_path: Path) -> None:
    good = ["2023-01-29T09:33:14.716Z", "1674984794716000000", "n", "a-abcdefgh-abcde", "c"]
    bad = ["yesterday", "-6795364578871345152", "n", "a-abcdefgh-abcde", "c"]
    rows = [[*good, "", "", "{}"], [*good, "", "", "{}"], [*bad, "", "", "{}"]]
    path = _write(tmp_path / "y_log.csv", _csv(LOG_HEADER, rows), False)
    with pytest.raises(InputError, match="yesterday") as info:
        read_logs(path)
    assert info.value.line == 4
