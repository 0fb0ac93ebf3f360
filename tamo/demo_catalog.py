"""The ``tamo demo`` scenarios and their scoring, from the fault catalogue the testbed publishes.

Why a module of its own, and a light one: ``tamo demo --list-scenarios`` reads only this (no
detector, no graph), and the scoring key is the catalogue's own data — the fault's target, the
actions it says clear or bypass the fault — never a table copied into the product.
"""

from __future__ import annotations

from typing import Any

from testbed.catalog import catalog_document
from tools.core.fault_catalog import CatalogAction, FaultCatalog, FaultEntry


def published_catalog() -> FaultCatalog:
    """The testbed's catalogue document, validated like any published one."""
    return FaultCatalog.model_validate(catalog_document())


def _as_catalog_action(action: dict[str, Any]) -> CatalogAction | None:
    """A planned testbed action in the catalogue's terms (``restart X``, ``skip X`` ...)."""
    t, target, params = action["type"], action["target"], action.get("params") or {}
    if t == "graceful_restart":
        return CatalogAction(kind="restart", arg=target)
    if t == "switch_model":
        return CatalogAction(kind="switch_model", arg=params.get("model"))
    if t == "set_skip_flag" and params.get("enabled", True):
        return CatalogAction(kind="skip", arg=target)
    if t == "restore_snapshot":
        return CatalogAction(kind="restore_snapshot")
    return None


def treats(plan: dict[str, Any], fault: FaultEntry) -> bool:
    """Whether a plan performs an action the catalogue says clears or bypasses ``fault``."""
    cures = {*fault.clears, *fault.bypasses}
    done = {_as_catalog_action(a) for a in plan.get("actions", [])}
    return any(
        a is not None and any(c.kind == a.kind and c.arg in (None, a.arg) for c in cures)
        for a in done
    )
