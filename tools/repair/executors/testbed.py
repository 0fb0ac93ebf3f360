"""Testbed executor: actions through the agent platform's control API (``testbed/controller.py``).

Why no import of ``testbed``: the repair engine treats the testbed as the outside world, as it
would a production control plane; it speaks the documented HTTP API only:
``POST /modules/{m}/restart``, ``POST /model``, ``POST /skip``, ``POST /snapshots/restore``,
``POST /tasks/{id}/redispatch``, ``GET /health``, ``GET /status``, ``GET /tasks/{id}``.

The control API has no server-side dry run, so :meth:`dry_run` is a pre-flight against the live
state (the target module exists and is up, the current model / skip flags) that changes nothing
and says what the action would change.
"""

from __future__ import annotations

from typing import Any

import httpx

from tools.core.errors import RepairError
from tools.repair.engine import PlannedAction
from tools.repair.executors.base import ActionResult, HttpCaller


class TestbedExecutor:
    __test__ = False  # not a pytest class

    name = "testbed"
    supported = frozenset(
        {"graceful_restart", "switch_model", "set_skip_flag", "restore_snapshot", "redispatch_task"}
    )
    dedupes = False

    def __init__(
        self,
        control_url: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = HttpCaller(control_url, timeout_s=timeout_s, transport=transport)

    def _status(self) -> dict[str, Any]:
        return self.http.call("GET", "/status")[1]

    def _module(self, status: dict[str, Any], module: str) -> dict[str, Any]:
        mods = status.get("modules", {})
        if module not in mods:
            raise RepairError(
                f"testbed has no module {module!r} (modules: {', '.join(mods)})",
                source=self.http.base_url,
            )
        return mods[module]

    def _skip_wanted(self, action: PlannedAction) -> bool:
        return bool(action.params.get("enabled", True))

    def dry_run(self, action: PlannedAction, *, key: str) -> ActionResult:
        st = self._status()
        t = action.type
        if t == "graceful_restart":
            m = self._module(st, action.target)
            ok = bool(m.get("up"))
            detail = f"would restart {action.target} (pid {m.get('pid')}, up={ok})"
        elif t == "switch_model":
            ok = True
            detail = f"would switch model {st.get('model')} -> {action.params.get('model')}"
        elif t == "set_skip_flag":
            self._module(st, action.target)
            ok = True
            detail = (
                f"would set skip {action.target}={self._skip_wanted(action)} "
                f"(now skipped: {st.get('skip', [])})"
            )
        elif t == "restore_snapshot":
            ok = True
            task = action.params.get("task_id") or "(store head)"
            detail = f"would restore the last snapshot of {task}"
        elif t == "redispatch_task":
            ok = bool(action.params.get("task_id"))
            detail = f"would re-dispatch {action.params.get('task_id')} (seq_no from the key)"
        else:
            raise RepairError(f"testbed executor cannot perform {t!r}", source=f"action {key}")
        return ActionResult(ok=ok, dry_run=True, detail=detail)

    def execute(self, action: PlannedAction, *, key: str) -> ActionResult:
        t, target = action.type, action.target
        if t == "graceful_restart":
            _, out = self.http.call("POST", f"/modules/{target}/restart")
            return ActionResult(
                ok=True,
                response=out,
                detail=(
                    f"restarted {target}: pid {out.get('old_pid')} -> {out.get('pid')} "
                    f"in {out.get('restart_s')}s"
                ),
            )
        if t == "switch_model":
            _, out = self.http.call("POST", "/model", json={"model": action.params["model"]})
            return ActionResult(
                ok=True,
                response=out,
                previous={"model": out.get("previous")},
                detail=f"model {out.get('previous')} -> {out.get('model')}",
            )
        if t == "set_skip_flag":
            before = target in self._status().get("skip", [])
            want = self._skip_wanted(action)
            _, out = self.http.call("POST", "/skip", json={"module": target, "skip": want})
            return ActionResult(
                ok=True,
                response=out,
                previous={"skip": before},
                detail=f"skip {target}: {before} -> {want}",
            )
        if t == "restore_snapshot":
            body = {
                "task_id": action.params.get("task_id") or None,
                "step": action.params.get("step"),
            }
            _, out = self.http.call("POST", "/snapshots/restore", json=body)
            return ActionResult(
                ok=True, response=out, detail=f"snapshot restored; cleared {out.get('cleared')}"
            )
        if t == "redispatch_task":
            task = action.params["task_id"]
            seq_no = int(key.rsplit(":", 1)[1])
            status, out = self.http.call(
                "POST",
                f"/tasks/{task}/redispatch",
                json={"seq_no": seq_no, "from_step": int(action.params.get("from_step", 0))},
                ok_statuses=(409,),
            )
            return ActionResult(
                ok=status in (200, 409),
                response=out,
                detail=f"re-dispatch {task}#{seq_no}: HTTP {status}",
            )
        raise RepairError(f"testbed executor cannot perform {t!r}", source=f"action {key}")

    def rollback(
        self, action: PlannedAction, *, key: str, previous: dict[str, Any]
    ) -> ActionResult:
        if action.type == "switch_model" and previous.get("model"):
            _, out = self.http.call("POST", "/model", json={"model": previous["model"]})
            return ActionResult(ok=True, response=out, detail=f"model back to {previous['model']}")
        if action.type == "set_skip_flag" and "skip" in previous:
            self.http.call(
                "POST", "/skip", json={"module": action.target, "skip": bool(previous["skip"])}
            )
            return ActionResult(ok=True, detail=f"skip {action.target} back to {previous['skip']}")
        return ActionResult(ok=True, detail=f"{action.type} has no inverse; nothing to undo")

    def precheck(self, check: str, action: PlannedAction) -> ActionResult:
        if check == "hot_restart_supported":
            m = self._module(self._status(), action.target)
            ok = bool(m.get("up"))
            return ActionResult(
                ok=ok,
                detail=f"{action.target} pid {m.get('pid')} "
                f"{'is up; the controller restarts it in place' if ok else 'is down'}",
            )
        if check == "snapshot_exists":
            task = action.params.get("task_id")
            if not task:
                return ActionResult(ok=False, detail="no task_id to look for a snapshot of")
            _, out = self.http.call("GET", f"/tasks/{task}")
            steps = [s.get("step") for s in out.get("snapshots", [])]
            return ActionResult(ok=bool(steps), detail=f"{task} snapshots at steps {steps}")
        if check == "no_unfinished_child_chains":
            parked = int(self._status().get("outbox", 0))
            return ActionResult(ok=parked == 0, detail=f"{parked} callbacks parked in the outbox")
        return ActionResult(ok=False, detail=f"pre-check {check!r} is not available on the testbed")
