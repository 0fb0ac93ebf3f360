"""Fixtures: a real testbed (all processes) exporting OTLP/HTTP to the in-test collector.

One testbed serves a whole test module (start-up costs seconds); ``bed`` resets faults, model
and skip flags around every test, and the finalizers stop every process even when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed import Testbed
from tests.testbed.support import Collector, reset


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> Iterator[Testbed]:
    tb = Testbed(
        tmp_path_factory.mktemp("testbed"),
        otlp_endpoint=collector.url,
        infer_timeout_s=0.8,  # generous: a loaded CI box must not time healthy calls out
        slow_ms=250,
    )
    tb.start()
    try:
        yield tb
    finally:
        tb.stop()


@pytest.fixture
def bed(testbed: Testbed) -> Iterator[Testbed]:
    """The module's testbed, healthy and fault-free before and after the test."""
    reset(testbed)
    yield testbed
    reset(testbed)
