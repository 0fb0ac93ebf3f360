"""The one interface every executor implements, and the HTTP plumbing they share.

Why one interface: the runner (safety, audit, verification) is the same whether the action is a
POST to the testbed's control API, a PATCH to the Kubernetes API or a webhook to someone else's
automation. Executors only know *how* to perform an action type; *whether* and *when* is the
runner's business.

Retries: only a connection that was never established is retried (the request cannot have had an
effect); anything that reached the server is reported as is, so a retry can never perform an
action twice. Every request carries the ``Idempotency-Key`` ``task_id:seq_no`` so receivers that
dedupe (the seed's "task_id + seq_no") can make even a re-send after a crash harmless.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, Field
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from tools.core.errors import BackendError
from tools.repair.engine import PlannedAction


class ActionResult(BaseModel):
    """What an executor did (or would do, for a dry run)."""

    ok: bool
    detail: str
    dry_run: bool = False
    previous: dict[str, Any] = Field(default_factory=dict)  # state needed to undo the action
    response: dict[str, Any] | None = None


@runtime_checkable
class Executor(Protocol):
    """Performs actions of the types in ``supported``."""

    name: str
    supported: frozenset[str]
    dedupes: bool  # the receiver drops a repeated Idempotency-Key, so a re-send is harmless

    def dry_run(self, action: PlannedAction, *, key: str) -> ActionResult:
        """Validate the action where it would run, changing nothing."""
        ...

    def execute(self, action: PlannedAction, *, key: str) -> ActionResult:
        """Perform the action; ``previous`` in the result lets :meth:`rollback` undo it."""
        ...

    def rollback(
        self, action: PlannedAction, *, key: str, previous: dict[str, Any]
    ) -> ActionResult:
        """Undo an executed action (a no-op with ``ok`` and a reason when it has no inverse)."""
        ...

    def precheck(self, check: str, action: PlannedAction) -> ActionResult:
        """One safety pre-check (``snapshot_exists``, ``hot_restart_supported``,
        ``no_unfinished_child_chains``); an unsupported check fails closed."""
        ...


class HttpCaller:
    """A small synchronous JSON-over-HTTP client with connect-only retries."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers or {},
            timeout=timeout_s,
            verify=verify,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    @retry(
        retry=retry_if_exception_type(httpx.ConnectError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        reraise=True,
    )
    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._client.request(method, path, **kw)

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of a request; raises ``BackendError`` naming URL and status for
        an unreachable server or an error status not in ``ok_statuses``."""
        url = f"{self.base_url}{path}"
        try:
            r = self._send(method, path, json=json, params=params, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"{method} failed: {exc.__class__.__name__}: {exc}", url=url
            ) from exc
        try:
            body = r.json() if r.content else {}
        except ValueError:
            body = {"text": r.text[:500]}
        if not isinstance(body, dict):
            body = {"items": body}
        if r.status_code >= 400 and r.status_code not in ok_statuses:
            msg = body.get("message") or body.get("detail") or body.get("error") or r.text[:200]
            raise BackendError(f"{method} refused: {msg}", url=url, status=r.status_code)
        return r.status_code, body
