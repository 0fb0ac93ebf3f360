"""Log evidence of a cut code path: statements that stop ending requests where they never did."""

from __future__ import annotations

import pyarrow as pa

from tools.learned.series import log_endings, log_series
from tools.telemetry.log_templates import TemplateMiner
from tools.telemetry.model import LOG_SCHEMA

STEP = 10**9


def _body(where: str, sec: int, k: int = 0) -> str:
    return f"12:00:0{k}.1 INFO  c.s.Impl{where} [get][took {sec} ms]"


def _logs(requests: list[tuple[int, str, list[str]]]) -> pa.Table:
    """One line per statement of each request ``(second, trace id, [Class#line, ...])``."""
    rows: dict[str, list] = {f.name: [] for f in LOG_SCHEMA}
    for sec, trace, statements in requests:
        for k, where in enumerate(statements):
            rows["ts_ns"].append(sec * STEP + k * 1000)
            rows["service"].append("svc-a")
            rows["pod"].append(None)
            rows["severity"].append("INFO")
            rows["body"].append(_body(where, sec, k))
            rows["trace_id"].append(trace)
            rows["span_id"].append(None)
            rows["attributes"].append(None)
    return pa.table(rows, schema=LOG_SCHEMA)


def _template(miner: TemplateMiner, body: str) -> int:
    (tid,) = miner.template_ids(pa.array([body]))
    return int(tid)


def test_requests_cut_after_a_middle_statement_are_counted() -> None:
    miner = TemplateMiner()
    normal = _logs([(s, f"b{s}", ["#10", "#20", "#30"]) for s in range(6)])
    endings = log_endings(normal, miner)
    assert endings[("svc-a", _template(miner, _body("#30", 0)))] == 1.0
    assert endings[("svc-a", _template(miner, _body("#20", 0)))] == 0.0
    # seconds 0-3 run to the end, seconds 4-7 stop after #20 (an exception between #20 and #30)
    window = _logs(
        [(s, f"w{s}", ["#10", "#20", "#30"]) for s in range(4)]
        + [(s, f"w{s}", ["#10", "#20"]) for s in range(4, 8)]
    )
    series = log_series(window, miner, 0, STEP, 8, None, endings)
    cut = series[series["channel"] == "log_cut"].set_index("bin")["value"]
    assert cut.loc[:3].sum() == 0 and (cut.loc[4:] == 1.0).all()
    # without a reference of normal endings nothing is called cut
    plain = log_series(window, miner, 0, STEP, 8, None, None)
    assert plain[plain["channel"] == "log_cut"]["value"].sum() == 0
