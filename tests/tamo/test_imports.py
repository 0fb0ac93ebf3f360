"""Heavy imports with the collector paused: it is back on afterwards, imported objects frozen."""

from __future__ import annotations

import gc

from tamo.imports import heavy_imports


def test_the_collector_is_paused_inside_and_back_after() -> None:
    frozen = gc.get_freeze_count()
    with heavy_imports():
        assert not gc.isenabled()
        kept = [object() for _ in range(10)]  # what an import would leave alive
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(kept)
    gc.unfreeze()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with heavy_imports():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
