"""A typed client of the controller's control API (what repair executors and the CLI call).

Why a client class: the repair engine, the demo and ``tamo testbed`` must not spell URLs and
JSON bodies themselves; one method per control action, each returning the controller's JSON and
raising :class:`TestbedError` (with URL and HTTP status) when the controller refuses.
"""

from __future__ import annotations

from typing import Any

import httpx


class TestbedError(RuntimeError):
    """The testbed failed to start, or its control API refused or failed a request."""

    __test__ = False  # not a pytest test class

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status

    def __str__(self) -> str:
        where = f"{self.url} (HTTP {self.status})" if self.status is not None else self.url
        return f"{where}: {self.message}" if where else self.message


class TestbedClient:
    """Synchronous client of ``control_url`` (the controller's base URL)."""

    __test__ = False

    def __init__(self, control_url: str, timeout_s: float = 30.0) -> None:
        self.control_url = control_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> dict[str, Any]:
        url = self.control_url + path
        try:
            resp = self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise TestbedError(f"control API unreachable: {exc}", url=url) from exc
        try:
            data = resp.json()
        except ValueError:
            data = {"error": resp.text[:200]}
        if resp.status_code not in ok:
            raise TestbedError(str(data.get("error") or data), url=url, status=resp.status_code)
        return data

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/status")

    def faults(self) -> dict[str, Any]:
        return self._request("GET", "/faults")

    def inject(self, fault: str, **params: float) -> dict[str, Any]:
        return self._request("POST", "/faults", {"fault": fault, "params": params})

    def clear(self, fault: str | None = None) -> dict[str, Any]:
        return self._request("DELETE", f"/faults/{fault}" if fault else "/faults")

    def restart(self, module: str) -> dict[str, Any]:
        return self._request("POST", f"/modules/{module}/restart")

    def switch_model(self, model: str) -> dict[str, Any]:
        return self._request("POST", "/model", {"model": model})

    def set_skip(self, module: str, skip: bool = True) -> dict[str, Any]:
        return self._request("POST", "/skip", {"module": module, "skip": skip})

    def restore_snapshot(
        self, task_id: str | None = None, step: int | None = None
    ) -> dict[str, Any]:
        return self._request("POST", "/snapshots/restore", {"task_id": task_id, "step": step})

    def redispatch(
        self, task_id: str, seq_no: int, from_step: int = 0, recovery_strategy: str | None = None
    ) -> dict[str, Any]:
        """Re-dispatch a task; the answer (also on 409 duplicate / 429 limit) is returned as is.

        ``recovery_strategy`` is set as a span attribute of the new trace (seed ch. 7)."""
        return self._request(
            "POST",
            f"/tasks/{task_id}/redispatch",
            {"seq_no": seq_no, "from_step": from_step, "recovery_strategy": recovery_strategy},
            ok=(200, 404, 409, 429, 500, 502, 503, 504),
        )

    def task(self, task_id: str) -> dict[str, Any]:
        return self._request("GET", f"/tasks/{task_id}")

    def close(self) -> None:
        self._http.close()
