"""The testbed: a small, real, instrumented LLM-agent platform with fault injection.

It is the "outside world" of TAMO-RCA and imports third-party packages only. Start it with
:class:`Testbed`, drive it with :class:`TestbedClient` (the control API) and
:func:`run_load`; ``catalog.FAULTS`` lists every fault with its symptoms and repair actions.
"""

from __future__ import annotations

from testbed.bed import Testbed, attach, stop_group
from testbed.catalog import FAULTS, MODELS, MODULES, SKIPPABLE, Action, FaultSpec
from testbed.client import TestbedClient, TestbedError
from testbed.load import LoadReport, TaskResult, run_load, run_load_sync

__all__ = [
    "FAULTS",
    "MODELS",
    "MODULES",
    "SKIPPABLE",
    "Action",
    "FaultSpec",
    "LoadReport",
    "TaskResult",
    "Testbed",
    "TestbedClient",
    "TestbedError",
    "attach",
    "run_load",
    "run_load_sync",
    "stop_group",
]
