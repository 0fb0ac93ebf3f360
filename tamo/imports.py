"""Importing a command's heavy libraries without the cyclic garbage collector.

Why: torch, scikit-learn, langgraph and pandas create hundreds of thousands of objects while they
import, and every few hundred allocations the collector walks them all again; pausing it for the
imports saves ~20 % of their CPU time (1.2 of 6.4 CPU-s for the diagnosis stack on the 2-core
reference machine). ``gc.freeze()`` afterwards moves the imported objects out of the collector's
sight for good, so the command's own collections stay short too. The collector is back on as the
block ends: long-running commands (``tamo serve``, ``tamo mcp``) collect their cycles as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def heavy_imports() -> Iterator[None]:
    """``with heavy_imports(): import torch`` — imports with the collector paused, then frozen."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
