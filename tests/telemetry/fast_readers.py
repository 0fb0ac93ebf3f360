"""What every fast file reader is tested against: the walker's rows exactly, or nothing at all.

Why one place: the typed Jaeger and OTLP readers and the column-at-a-time JSONL reader make the
same promise (the rows and counts of the walker they stand in front of, or they step aside
having added nothing, and bad input still fails with the walker's one-line error), so the
promise is written once and each reader's test only says how to run the two paths.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.telemetry.ingest import parse_text
from tools.telemetry.ingest.common import Counter

HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Rows = tuple[pa.Table, Counter]  # what a reader added: its rows and its counts


def fields(variants: bool) -> Callable[..., st.SearchStrategy]:
    """``field(good, *bad)``: the canonical values, or with ``variants`` also the listed ones the
    walker accepts or refuses, so one strategy builds both kinds of example."""

    def field(good: st.SearchStrategy, *bad: object) -> st.SearchStrategy:
        return st.one_of(good, st.sampled_from(bad)) if variants else good

    return field


def walked(walk: Callable[[], Rows]) -> Rows | InputError:
    """The walker's rows and counts, or the error it refused the input with."""
    try:
        return walk()
    except InputError as exc:
        return exc


def assert_agrees(taken: bool, fast: Rows, walker: Rows | InputError) -> None:
    """The fast reader agrees with the walker on one input: the same rows and counts, or (not
    ``taken``) it stepped aside having added nothing."""
    table, counter = fast
    if not taken:
        assert table.num_rows == 0  # nothing added before stepping aside
        assert counter == Counter()
        return
    assert not isinstance(walker, InputError), walker  # it never accepts what the walker refuses
    assert table.equals(walker[0])
    assert counter == walker[1]


def assert_error(text: str, name: str, fmt: str, message: str) -> None:
    """Bad input read through ``parse_text`` fails with the walker's one-line error ``message``."""
    with pytest.raises(InputError) as exc:
        parse_text(text, name, fmt)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)
