"""Decoding the ``Log`` field of Nezha log rows: Docker JSON records around application lines.

Why two paths: every ``Log`` cell is a Docker record ``{"log": <line>, "stream", "time"}``; OB
application lines are themselves JSON (``severity``, ``message``), TT lines are Logback text whose
level is the second token. pyarrow's JSON reader decodes a whole file's records in one vectorised
pass (about 4x less CPU than DuckDB's JSON functions), but it needs every record to be a clean JSON
object; the rare file with a broken record goes through the DuckDB query instead, which judges
each row on its own (a row that is not JSON keeps its raw text as the body). Both paths give the
same table -- the property tests compare them.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from tools.telemetry.datasets.columnar import duck_query

LEVEL_PATTERN = (
    r"^\S+\s+(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|CRITICAL)\b"
)
_DOCKER = pa.schema([("log", pa.string()), ("stream", pa.string())])
_APP = pa.schema([("severity", pa.string()), ("message", pa.string())])

#: input columns: ts_ns, service, PodName, Container, Node, TraceID, SpanID, Log
LOG_SQL = r"""
WITH docker AS (
  SELECT *,
    CASE WHEN json_valid(Log) THEN json_extract_string(Log, ['$.log', '$.stream']) END AS rec
  FROM raw
), lines AS (
  SELECT *, rtrim(rec[1], chr(10) || chr(13)) AS line FROM docker
), app AS (
  SELECT *,
    CASE WHEN starts_with(ltrim(line), '{') AND json_valid(line)
      THEN json_extract_string(line, ['$.severity', '$.message'])
    END AS fields
  FROM lines
)
SELECT
  ts_ns,
  service,
  NULLIF(PodName, '') AS pod,
  CASE
    WHEN fields IS NOT NULL THEN upper(fields[1])
    ELSE NULLIF(regexp_extract(line,
      '^\S+\s+(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|CRITICAL)\b', 1), '')
  END AS severity,
  CASE
    WHEN line IS NULL THEN Log
    WHEN fields IS NOT NULL THEN coalesce(fields[2], line)
    ELSE line
  END AS body,
  NULLIF(TraceID, '') AS trace_id,
  NULLIF(SpanID, '') AS span_id,
  json_object('container', NULLIF(Container, ''), 'node', NULLIF(Node, ''),
              'stream', rec[2])::VARCHAR AS attributes
FROM app
"""


def decode_logs(raw: pa.Table) -> pa.Table:
    """Rows with the columns listed above -> ``ts_ns, service, pod, severity, body, trace_id,
    span_id, attributes`` (the ``LOG_SCHEMA`` columns), by the fast path when it applies."""
    fast = decode_logs_arrow(raw)
    return fast if fast is not None else decode_logs_duckdb(raw)


def decode_logs_duckdb(raw: pa.Table) -> pa.Table:
    """Row-by-row tolerant decoding in DuckDB (raises ``duckdb.Error`` on engine failure)."""
    return duck_query(LOG_SQL, raw=raw)


def decode_logs_arrow(raw: pa.Table) -> pa.Table | None:
    """Vectorised decoding with pyarrow; None when some record is not a clean JSON object."""
    docker = _json_lines(raw["Log"], _DOCKER)
    if docker is None:
        return None
    line = pc.utf8_rtrim(docker["log"].combine_chunks(), "\r\n")
    level = pc.struct_field(pc.extract_regex(line, LEVEL_PATTERN), "level")
    severity = pc.if_else(pc.equal(level, ""), pa.scalar(None, pa.string()), level)
    body = line
    is_app_json = pc.fill_null(pc.starts_with(pc.utf8_ltrim(line, " "), "{"), False)
    if pc.any(is_app_json).as_py():
        app_lines = pc.filter(line, is_app_json)
        app = _json_lines(app_lines, _APP)
        if app is None:
            return None
        severity = pc.replace_with_mask(
            severity, is_app_json, pc.utf8_upper(app["severity"].combine_chunks())
        )
        message = pc.coalesce(app["message"].combine_chunks(), app_lines)
        body = pc.replace_with_mask(body, is_app_json, message)
    body = pc.if_else(pc.is_null(line), raw["Log"].combine_chunks(), body)
    return pa.table(
        {
            "ts_ns": raw["ts_ns"],
            "service": raw["service"],
            "pod": _nullif_empty(raw["PodName"]),
            "severity": severity,
            "body": body,
            "trace_id": _nullif_empty(raw["TraceID"]),
            "span_id": _nullif_empty(raw["SpanID"]),
            "attributes": _attributes(raw["Container"], raw["Node"], docker["stream"]),
        }
    )


def _json_lines(values: pa.ChunkedArray | pa.Array, schema: pa.Schema) -> pa.Table | None:
    """Each string of ``values`` parsed as one JSON object with ``schema``'s string fields."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    if values.null_count or n == 0:
        return None
    if pc.any(pc.match_substring_regex(values, r"[\r\n]|^\s*$")).as_py():
        return None  # one record per line is the reader's contract
    # "record\n" per row: the data buffer of this fresh array (offset 0) is the JSON-lines text
    lines = pc.binary_join_element_wise(values, pa.scalar("\n"), "")
    text = lines.buffers()[2].slice(0, pc.sum(pc.binary_length(lines)).as_py())
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pajson.read_json(pa.BufferReader(text), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == n else None


def _nullif_empty(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _attributes(
    container: pa.ChunkedArray, node: pa.ChunkedArray, stream: pa.ChunkedArray
) -> pa.Array:
    """``{"container","node","stream"}`` JSON per row, built once per distinct combination
    (a file has a handful): the three columns' dictionary codes are combined into one code."""
    codes: pa.Array | None = None
    dictionaries = []
    for col in (_nullif_empty(container), _nullif_empty(node), stream):
        enc = pc.dictionary_encode(col.combine_chunks())
        size = len(enc.dictionary) + 1
        idx = pc.add(pc.fill_null(pc.cast(enc.indices, pa.int64()), -1), 1)  # 0 = null
        codes = idx if codes is None else pc.add(pc.multiply(codes, size), idx)
        dictionaries.append((size, [None, *enc.dictionary.to_pylist()]))
    distinct = pc.dictionary_encode(codes)
    texts = []
    for code in distinct.dictionary.to_pylist():
        parts = []
        for size, values in reversed(dictionaries):
            code, k = divmod(code, size)
            parts.append(values[k])
        stream_v, node_v, container_v = parts
        record = {"container": container_v, "node": node_v, "stream": stream_v}
        texts.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    return pc.take(pa.array(texts, pa.string()), distinct.indices)
