"""JSON Lines logs a column at a time: the walker's rows, with its per-line work done once.

Why a second reader beside :mod:`jsonl_logs`: a structured logger writes the same fields on every
line, yet the walker resolves the field aliases (``ts``/``time``/…, ``msg``/``message``/…) and
parses an ISO time with a regex and ``datetime`` on each line. Here the aliases are resolved once
per set of present fields, and ISO times in the common shape (``2023-11-14T22:13:05.123456Z``, no
offset: UTC) are parsed for the whole file in one numpy call; every other time goes through the
walker's own ``parse_time``.

On anything it cannot read as the walker would — a line that is not an object, a missing time or
message, a time ``parse_time`` refuses, JSON that only Python's ``json`` accepts — :func:`add_lines`
returns ``False`` before anything was added, and the caller reads the file with the walker, which
names the line and field (a property test holds the two equal).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import numpy as np

from tools.core.errors import InputError
from tools.telemetry.ingest.common import MAX_BODY_CHARS, Counter, Fail, Rows, attributes_json, cap
from tools.telemetry.ingest.jsonl_logs import (
    BODY_KEYS,
    LEVEL_KEYS,
    POD_KEYS,
    SERVICE_KEYS,
    SPAN_KEYS,
    TIME_KEYS,
    TRACE_KEYS,
    log_id,
    parse_time,
)
from tools.telemetry.ingest.otlp_fast import NotCanonical
from tools.telemetry.model import service_from_pod

_ALIASES = (TIME_KEYS, LEVEL_KEYS, BODY_KEYS, SERVICE_KEYS, POD_KEYS, TRACE_KEYS, SPAN_KEYS)
_DECODER = msgspec.json.Decoder()
# ISO times numpy reads exactly as the walker does: UTC, no offset, years numpy's ns range holds
_ISO_TIMES = re.compile(
    r"(?:(?:19|20)\d\d-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?Z?\n)*"
)
_NO_LINE = Fail("")
_CHUNK_LINES = 50_000  # decoded records alive at once: memory follows the columns, not the dicts


def _plan(present: tuple[str, ...]) -> tuple[str | None, ...]:
    """The walker's choice of field for each alias list: the first present with a value."""
    return tuple(next((k for k in keys if k in present), None) for keys in _ALIASES)


def _times(values: list[Any], key: str) -> list[int]:
    if all(type(v) is str for v in values):
        text = "\n".join(values) + "\n"
        if text.count("\n") == len(values) and _ISO_TIMES.fullmatch(text):
            try:
                parsed = np.array([v.rstrip("Z") for v in values], dtype="datetime64[ns]")
            except ValueError:  # a day or month out of range: the walker's error
                raise NotCanonical from None
            return parsed.astype(np.int64).tolist()
    try:
        return [parse_time(v, _NO_LINE, key) for v in values]
    except InputError:
        raise NotCanonical from None


def _columns(
    lines: list[str], counter: Counter, plans: dict[tuple[str, ...], tuple[str | None, ...]]
) -> dict[str, list]:
    """The log columns of a run of lines; ``plans`` caches the field choice per set of fields."""
    records = [_DECODER.decode(line) for line in lines]
    chosen = []
    for obj in records:
        if type(obj) is not dict:
            raise NotCanonical
        present = tuple(k for k, v in obj.items() if v is not None)
        plan = plans.get(present)
        if plan is None:
            plan = plans[present] = _plan(present)
            if plan[0] is None or plan[2] is None:
                raise NotCanonical  # no time or no message: the walker's error
        chosen.append(plan)
    ts = [0] * len(records)
    for key in {p[0] for p in chosen}:
        at = [i for i, p in enumerate(chosen) if p[0] == key]
        for i, t in zip(at, _times([records[i][key] for i in at], key), strict=True):
            ts[i] = t
    cols: dict[str, list] = {
        name: []
        for name in ("service", "pod", "severity", "body", "trace_id", "span_id", "attributes")
    }
    for obj, (tk, lk, bk, sk, pk, trk, spk) in zip(records, chosen, strict=True):
        body = obj[bk]
        pod = None if pk is None else obj[pk]
        service = None if sk is None else obj[sk]
        if service is None and pod is not None:
            service = service_from_pod(str(pod))
        level = None if lk is None else obj[lk]
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        used = (tk, lk, bk, sk, pk, trk, spk)
        cols["service"].append(None if service is None else str(service))
        cols["pod"].append(None if pod is None else str(pod))
        cols["severity"].append(None if level is None else str(level).upper())
        cols["body"].append(cap(text, MAX_BODY_CHARS, counter))
        cols["trace_id"].append(None if trk is None else log_id(obj[trk], 32))
        cols["span_id"].append(None if spk is None else log_id(obj[spk], 16))
        rest = {k: v for k, v in obj.items() if k not in used}
        cols["attributes"].append(attributes_json(rest, counter))
    cols["ts_ns"] = ts
    return cols


def add_lines(lines: list[str], rows: Rows, counter: Counter) -> bool:
    """Add the records of a file's non-blank lines; ``False`` — with nothing added — when one
    of them is not what the walker would read as it does (the walker then names the line)."""
    local, plans = Counter(), {}
    cols: dict[str, list] = {name: [] for name in rows.cols}
    try:
        for start in range(0, len(lines), _CHUNK_LINES):
            for name, col in _columns(lines[start : start + _CHUNK_LINES], local, plans).items():
                cols[name] += col
    except (msgspec.DecodeError, NotCanonical):
        return False
    for name, col in cols.items():
        rows.cols[name] += col
    counter.truncated += local.truncated
    return True
