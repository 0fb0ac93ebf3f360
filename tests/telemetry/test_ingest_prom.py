"""Prometheus text exposition snapshots: round trip through prometheus_client's own writer."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from tools.core.errors import InputError
from tools.telemetry.ingest import parse_file, parse_text

HYP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

metric_names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
label_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


class Fixed:
    """A collector exposing exactly the families given."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


@st.composite
def expositions(draw: st.DrawFn) -> tuple[str, list[tuple]]:
    families, expected = [], []
    names = draw(st.lists(metric_names, min_size=1, max_size=4, unique=True))
    for name in names:
        fam = GaugeMetricFamily(name, "help text", labels=["pod", "zone"])
        for i in range(draw(st.integers(1, 3))):
            pod, zone = f"cart-5f55b6cf68-{i:05d}", draw(label_values)
            value = draw(st.floats(allow_nan=False, width=64))
            ts_ms = draw(st.one_of(st.none(), st.integers(1, 2**41)))
            fam.samples.append(
                Sample(
                    name, {"pod": pod, "zone": zone}, value, None if ts_ms is None else ts_ms / 1000
                )
            )
            # the reference writer prints int(seconds * 1000): what a reader can get back
            written = None if ts_ms is None else int(ts_ms / 1000 * 1000)
            expected.append((name, "cart", pod, {"pod": pod, "zone": zone}, written, value))
        families.append(fam)
    reg = CollectorRegistry()
    reg.register(Fixed(families))
    return generate_latest(reg).decode(), expected


@HYP
@given(expositions())
def test_round_trip_through_the_reference_writer(doc: tuple[str, list[tuple]]) -> None:
    text, expected = doc
    snapshot_ns = 1_700_000_000_000_000_000
    parsed = parse_text(text, "m.prom", default_ts_ns=snapshot_ns)
    assert parsed.format == "prom-text"
    got = [
        (r["name"], r["service"], r["pod"], json.loads(r["labels"]), r["ts_ns"], r["value"])
        for r in parsed.metrics.to_pylist()
    ]
    want = [
        (n, s, p, lab, snapshot_ns if ts is None else ts * 1_000_000, v)
        for n, s, p, lab, ts, v in expected
    ]
    assert got == want


def test_timeless_samples_take_the_file_mtime(tmp_path: Path) -> None:
    path = tmp_path / "snap.txt"
    path.write_text('# TYPE up gauge\nup{job="api"} 1\nup{job="db"} NaN\n')
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    rows = parse_file(path).metrics.to_pylist()
    assert [r["ts_ns"] for r in rows] == [1_600_000_000_000_000_000] * 2
    assert [r["service"] for r in rows] == ["api", "db"]
    assert rows[0]["labels"] == '{"job":"api"}' and math.isnan(rows[1]["value"])


def test_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.prom"
    path.write_text('# TYPE up gauge\nup 1\nup{job="x" 2\n')
    with pytest.raises(InputError, match=r"bad.prom:3: invalid Prometheus exposition"):
        parse_file(path, fmt="prom-text")


@HYP
@given(expositions(), st.data())
def test_truncated_or_mutated_only_raise_input_error(doc, data) -> None:
    text = doc[0]
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", "{", "}", '"', " ", "\n", "=", "x", "# TYPE"]))
    with contextlib.suppress(InputError):
        parse_text(text[:cut] + junk + text[cut + 1 :], "f.prom", "prom-text", default_ts_ns=1)
