"""Prometheus text exposition snapshots (``/metrics`` saved to a file).

Why the official parser: ``prometheus_client.parser`` is the reference implementation of the
format, so escaping, ``# TYPE``/``# HELP`` and special values behave exactly as Prometheus does.
Samples without a timestamp get the snapshot time: the one given, else the file's mtime.
Exposition timestamps are milliseconds; they are kept exact.
"""

from __future__ import annotations

import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from tools.core.errors import InputError
from tools.telemetry.ingest.common import INT64_MAX, labels_json, metric_rows, service_and_pod

# What the reference parser raises on malformed input.
_PARSE_ERRORS = (ValueError, IndexError, KeyError, TypeError, AttributeError)


def _bad_line(text: str) -> tuple[int | None, str]:
    """The first line that fails to parse on its own, with the parser's message."""
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except _PARSE_ERRORS as exc:
            return i, str(exc) or type(exc).__name__
    return None, "malformed exposition"


def parse(path: str, text: str, default_ts_ns: int) -> pa.Table:
    rows = metric_rows()
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                ts = default_ts_ns
                if s.timestamp is not None:
                    ts = round(float(s.timestamp) * 1000) * 1_000_000
                    if not 0 <= ts <= INT64_MAX:
                        raise InputError(
                            f"sample {s.name}{s.labels}: timestamp out of range", path=path
                        )
                labels = dict(s.labels)
                service, pod = service_and_pod(labels)
                rows.add(
                    name=s.name,
                    service=service,
                    pod=pod,
                    labels=labels_json(labels),
                    ts_ns=ts,
                    value=float(s.value),
                )
    except _PARSE_ERRORS as exc:
        line, message = _bad_line(text)
        raise InputError(
            f"invalid Prometheus exposition: {message or exc}"[:300], path=path, line=line
        ) from None
    return rows.table()
