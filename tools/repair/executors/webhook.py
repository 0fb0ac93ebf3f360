"""Generic webhook executor: hand an action to someone else's automation.

Why: many teams already have a runbook service, a ChatOps bot or a CI job that performs repairs.
Each call is one JSON POST: ``{"action", "target", "params", "key", "mode"}`` with ``mode`` one of
``dry_run`` / ``execute`` / ``rollback`` / ``precheck`` and the ``Idempotency-Key`` header. The
receiver answers 2xx with ``{"ok": bool, "detail": str, "previous": {...}}`` (all optional;
a 2xx without ``ok`` counts as success).
"""

from __future__ import annotations

from typing import Any

import httpx

from tools.repair.engine import PlannedAction
from tools.repair.executors.base import ActionResult, HttpCaller
from tools.repair.strategy import KNOWN_ACTIONS


class WebhookExecutor:
    name = "webhook"
    supported = frozenset(KNOWN_ACTIONS)

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        dedupes: bool = False,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.dedupes = dedupes
        self.http = HttpCaller(url, headers=headers, timeout_s=timeout_s, transport=transport)

    def _post(self, mode: str, action: PlannedAction, key: str, **extra: Any) -> ActionResult:
        body = {
            "mode": mode,
            "action": action.type,
            "target": action.target,
            "params": action.params,
            "key": key,
            **extra,
        }
        _, out = self.http.call("POST", "", json=body, headers={"Idempotency-Key": key})
        return ActionResult(
            ok=bool(out.get("ok", True)),
            detail=str(out.get("detail", f"webhook accepted {mode} {action.type}")),
            dry_run=mode == "dry_run",
            previous=out.get("previous") or {},
            response=out,
        )

    def dry_run(self, action: PlannedAction, *, key: str) -> ActionResult:
        return self._post("dry_run", action, key)

    def execute(self, action: PlannedAction, *, key: str) -> ActionResult:
        return self._post("execute", action, key)

    def rollback(
        self, action: PlannedAction, *, key: str, previous: dict[str, Any]
    ) -> ActionResult:
        return self._post("rollback", action, key, previous=previous)

    def precheck(self, check: str, action: PlannedAction) -> ActionResult:
        return self._post("precheck", action, f"precheck:{check}", check=check)
