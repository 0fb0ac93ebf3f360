"""The HTTP plumbing every backend client shares: retries, timeouts, auth, errors, a sync facade.

Why one module: Prometheus, Loki, Jaeger and Tempo fail the same ways (connection refused, slow
answers, 429 throttling, 5xx during a rollout, a proxy's HTML page instead of JSON), so they get
one retry policy and one error shape: a single-line ``BackendError`` naming the URL and status.
Secrets (bearer token, basic-auth password) live only in request headers, never in a log line, an
error message or a ``repr``.

The source protocols are synchronous but the clients are async (``httpx.AsyncClient``). The sync
facade runs coroutines on one dedicated event-loop thread, so it is safe to call from any thread,
including a worker thread of a program whose own event loop is running (the MCP server does
that); it never calls ``asyncio.run`` inside a running loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from tools.core.errors import BackendError
from tools.core.settings import BackendSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

MAX_BACKOFF_S = 30.0
_DETAIL_CHARS = 200


class _Retryable(Exception):
    """A response worth retrying (429 or 5xx); carries what the final error must name."""

    def __init__(self, url: str, status: int, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.url = url
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def redact_url(url: str) -> str:
    """``url`` without user-info (``user:password@``): safe to log and to show in an error."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_CHARS else flat[: _DETAIL_CHARS - 1] + "…"


def _error_detail(response: httpx.Response) -> str:
    """What the backend said about its failure: Prometheus/Loki JSON ``error`` or the body text."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "message", "errors"):
            if body.get(key):
                kind = body.get("errorType")
                text = body[key] if isinstance(body[key], str) else json.dumps(body[key])
                return _one_line(f"{kind}: {text}" if kind else text)
    return _one_line(response.text)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: not worth parsing, exponential backoff applies
        return None


def _is_transient(exc: BaseException) -> bool:
    return isinstance(
        exc, _Retryable | httpx.TimeoutException | httpx.ConnectError | httpx.RemoteProtocolError
    )


class _LoopThread:
    """One daemon thread running an event loop, shared by every sync facade in the process."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tamo-backends-loop", daemon=True
        )
        self.thread.start()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a backend's sync facade was called from its own event loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class BackendClient:
    """Base of the four clients: one configured ``httpx.AsyncClient`` per event loop.

    ``retries`` is the number of *re*-tries after the first attempt. Backoff is exponential from
    ``backoff_s`` (capped at 30 s) and honours a ``Retry-After`` header on 429/503.
    """

    kind = "backend"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        token: SecretStr | str | None = None,
        username: str | None = None,
        password: SecretStr | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._token = SecretStr(token) if isinstance(token, str) else token
        self._username = username
        self._password = SecretStr(password) if isinstance(password, str) else password
        self._headers = dict(headers or {})
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    @classmethod
    def options_from_settings(cls, settings: BackendSettings) -> dict[str, Any]:
        """Constructor keyword arguments (timeouts, retries, auth) from ``BackendSettings``."""
        return {
            "timeout_s": settings.http_timeout_s,
            "retries": settings.http_retries,
            "token": settings.backend_token,
            "username": settings.backend_username,
            "password": settings.backend_password,
        }

    def __repr__(self) -> str:
        auth = "bearer" if self._token else "basic" if self._username else "none"
        return f"{type(self).__name__}({redact_url(self.base_url)!r}, auth={auth})"

    # -- transport -----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            headers = {"Accept": "application/json", **self._headers}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
            auth = None
            if self._username is not None:
                secret = self._password.get_secret_value() if self._password else ""
                auth = httpx.BasicAuth(self._username, secret)
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                auth=auth,
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=True,
            )
            self._clients[loop] = client
        return client

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = httpx.URL(self.base_url + path, params=dict(params or {}))
        return redact_url(str(url))

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(max(backoff, exc.retry_after), MAX_BACKOFF_S)
        return backoff

    async def _get_once(self, path: str, params: Mapping[str, Any] | None) -> httpx.Response:
        url = self._url(path, params)
        response = await self._client().get(path, params=params)
        log.debug("%s GET %s -> %s", self.kind, url, response.status_code)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(
                url, response.status_code, _error_detail(response), _retry_after(response)
            )
        if response.status_code >= 400:
            raise BackendError(
                f"{self.kind} rejected the request: {_error_detail(response)}",
                url=url,
                status=response.status_code,
            )
        return response

    async def get_response(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """GET ``path`` with retries; a 2xx response or ``BackendError``."""
        attempts = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            reraise=True,
        )
        url = self._url(path, params)
        try:
            async for attempt in attempts:
                with attempt:
                    return await self._get_once(path, params)
        except _Retryable as exc:
            raise BackendError(
                f"{self.kind} failed after {self.retries + 1} attempts: {exc.detail}",
                url=exc.url,
                status=exc.status,
            ) from None
        except httpx.TimeoutException:
            raise BackendError(
                f"{self.kind} timed out after {self.timeout_s:g} s ({self.retries + 1} attempts)",
                url=url,
            ) from None
        except httpx.TransportError as exc:
            raise BackendError(
                f"{self.kind} unreachable after {self.retries + 1} attempts: "
                f"{type(exc).__name__}: {_one_line(str(exc))}",
                url=url,
            ) from None
        except httpx.HTTPError as exc:  # e.g. a body that fails to decode
            raise BackendError(
                f"{self.kind} request failed: {type(exc).__name__}: {_one_line(str(exc))}",
                url=url,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and decode its JSON body; a body that is not JSON is a ``BackendError``."""
        response = await self.get_response(path, params)
        try:
            return response.json()
        except ValueError:
            raise BackendError(
                f"{self.kind} answered with malformed JSON: {_one_line(response.text)!r}",
                url=self._url(path, params),
                status=response.status_code,
            ) from None

    def malformed(
        self, what: str, path: str, params: Mapping[str, Any] | None = None
    ) -> BackendError:
        """A ``BackendError`` for JSON that parsed but is not shaped as the API documents."""
        return BackendError(
            f"{self.kind} answered with an unexpected shape: {what}",
            url=self._url(path, params),
            status=200,
        )

    # -- sync facade and lifetime --------------------------------------------------------------

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this client's coroutines to completion from synchronous code."""
        return _LoopThread.get().run(coro)

    async def aclose(self) -> None:
        """Close the connection pool of the calling event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Close the connection pool the sync facade uses."""
        self.run_sync(self.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


C = TypeVar("C", bound=BackendClient)


def synchronous(
    coro_fn: Callable[Concatenate[C, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[C, P], T]:
    """The synchronous twin of an ``a``-prefixed client coroutine, e.g. ``logs =
    synchronous(alogs)``: same parameters, run through :meth:`BackendClient.run_sync`.

    Why: every async method has a sync facade, and writing each signature twice is how the two
    drift apart. The coroutine is looked up by name on the instance, so a subclass's override is
    the one that runs (``TraceClient.spans`` calls the Jaeger or Tempo ``aspans``).
    """
    name = coro_fn.__name__

    def method(self: C, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run_sync(getattr(self, name)(*args, **kwargs))

    method.__name__ = method.__qualname__ = name.removeprefix("a")
    method.__doc__ = coro_fn.__doc__
    return method
