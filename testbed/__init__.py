"""The testbed: a small, real, instrumented LLM-agent platform with fault injection.

It is the "outside world" of TAMO-RCA and imports third-party packages only. Start it with
:class:`Testbed`, drive it with :class:`TestbedClient` (the control API) and
:func:`run_load`; ``catalog.FAULTS`` lists every fault with its symptoms and repair actions.

Exports resolve lazily (PEP 562) so that each of the platform's processes, started as
``python -m testbed MODULE``, imports only what it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Testbed": "testbed.bed",
    "attach": "testbed.bed",
    "stop_group": "testbed.bed",
    "FAULTS": "testbed.catalog",
    "MODELS": "testbed.catalog",
    "MODULES": "testbed.catalog",
    "SKIPPABLE": "testbed.catalog",
    "Action": "testbed.catalog",
    "FaultSpec": "testbed.catalog",
    "TestbedClient": "testbed.client",
    "TestbedError": "testbed.client",
    "LoadReport": "testbed.load",
    "TaskResult": "testbed.load",
    "run_load": "testbed.load",
    "run_load_sync": "testbed.load",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'testbed' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
