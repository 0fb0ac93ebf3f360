"""Kubernetes executor: rollout restart and scale of a Deployment over the REST API.

Why raw REST and not a client library: two calls are all we need, and speaking the documented
wire format keeps the executor testable against a loopback server that answers exactly as the
API reference shows. The calls (Kubernetes API reference, apps/v1 Deployment, "Operations"):

* rollout restart = ``PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`` with a strategic
  merge patch setting the pod-template annotation ``kubectl.kubernetes.io/restartedAt`` (what
  ``kubectl rollout restart`` sends); the answer is the Deployment.
* scale = ``GET``/``PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`` (the scale
  subresource, an ``autoscaling/v1`` ``Scale`` with ``spec.replicas``), merge patch.
* dry run = the same request with ``?dryRun=All``: the server validates and admits the change
  but persists nothing (API concepts, "Dry-run").
* errors are a ``v1`` ``Status`` object (``status: Failure``, ``message``, ``reason``, ``code``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tools.core.errors import RepairError
from tools.repair.engine import PlannedAction
from tools.repair.executors.base import ActionResult, HttpCaller

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
FIELD_MANAGER = "tamo-rca"


class KubernetesExecutor:
    """Targets are ``name`` or ``namespace/name`` of a Deployment (``deployment/`` prefix ok)."""

    name = "kubernetes"
    supported = frozenset({"rollout_restart", "graceful_restart", "scale"})
    dedupes = False

    def __init__(
        self,
        api_url: str,
        *,
        namespace: str = "default",
        token: str | None = None,
        verify: bool | str = True,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.namespace = namespace
        self.http = HttpCaller(
            api_url, headers=headers, timeout_s=timeout_s, verify=verify, transport=transport
        )

    @classmethod
    def in_cluster(cls, sa_dir: Path = SA_DIR, **kw: Any) -> KubernetesExecutor:
        """Use the pod's service account (token, CA, namespace) and ``KUBERNETES_SERVICE_*``."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (sa_dir / "token").exists():
            raise RepairError("not running in a Kubernetes pod", source=str(sa_dir))
        ns_file = sa_dir / "namespace"
        return cls(
            f"https://{host}:{port}",
            namespace=ns_file.read_text().strip() if ns_file.exists() else "default",
            token=(sa_dir / "token").read_text().strip(),
            verify=str(sa_dir / "ca.crt"),
            **kw,
        )

    # -- helpers -------------------------------------------------------------------------------
    def _path(self, target: str, sub: str = "") -> str:
        t = target.removeprefix("deployment/").removeprefix("deployments/")
        ns, _, name = t.rpartition("/")
        return f"/apis/apps/v1/namespaces/{ns or self.namespace}/deployments/{name}{sub}"

    def _patch(self, path: str, body: dict[str, Any], ctype: str, dry: bool) -> dict[str, Any]:
        params = {"fieldManager": FIELD_MANAGER}
        if dry:
            params["dryRun"] = "All"
        _, out = self.http.call(
            "PATCH",
            path,
            params=params,
            content=json.dumps(body).encode(),
            headers={"Content-Type": ctype},
        )
        return out

    def _restart(self, action: PlannedAction, dry: bool) -> ActionResult:
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: ts}}}}}
        out = self._patch(
            self._path(action.target), body, "application/strategic-merge-patch+json", dry
        )
        gen = out.get("metadata", {}).get("generation")
        verb = "would restart" if dry else "restarted"
        return ActionResult(
            ok=True,
            dry_run=dry,
            detail=f"{verb} deployment {action.target} (restartedAt={ts}, generation={gen})",
            response=out,
        )

    def _scale(self, action: PlannedAction, dry: bool, replicas: int | None = None) -> ActionResult:
        want = int(replicas if replicas is not None else action.params.get("replicas", -1))
        if want < 0:
            raise RepairError("scale needs params.replicas >= 0", source=f"action {action.seq_no}")
        path = self._path(action.target, "/scale")
        _, current = self.http.call("GET", path)
        before = int(current.get("spec", {}).get("replicas", 0))
        out = self._patch(path, {"spec": {"replicas": want}}, "application/merge-patch+json", dry)
        got = out.get("spec", {}).get("replicas")
        verb = "would scale" if dry else "scaled"
        return ActionResult(
            ok=got == want,
            dry_run=dry,
            previous={"replicas": before},
            detail=f"{verb} {action.target} {before} -> {got}",
            response=out,
        )

    def _do(self, action: PlannedAction, dry: bool) -> ActionResult:
        if action.type in ("rollout_restart", "graceful_restart"):
            return self._restart(action, dry)
        if action.type == "scale":
            return self._scale(action, dry)
        raise RepairError(
            f"kubernetes executor cannot perform {action.type!r}", source=f"action {action.seq_no}"
        )

    # -- the Executor interface ----------------------------------------------------------------
    def dry_run(self, action: PlannedAction, *, key: str) -> ActionResult:
        return self._do(action, dry=True)

    def execute(self, action: PlannedAction, *, key: str) -> ActionResult:
        return self._do(action, dry=False)

    def rollback(
        self, action: PlannedAction, *, key: str, previous: dict[str, Any]
    ) -> ActionResult:
        if action.type == "scale" and "replicas" in previous:
            return self._scale(action, dry=False, replicas=int(previous["replicas"]))
        return ActionResult(ok=True, detail=f"{action.type} has no inverse; nothing to undo")

    def precheck(self, check: str, action: PlannedAction) -> ActionResult:
        _, dep = self.http.call("GET", self._path(action.target))
        spec, status = dep.get("spec", {}), dep.get("status", {})
        if check == "hot_restart_supported":
            kind = spec.get("strategy", {}).get("type", "RollingUpdate")
            replicas = int(spec.get("replicas", 1))
            ok = kind == "RollingUpdate" and replicas >= 2
            return ActionResult(
                ok=ok,
                detail=f"strategy {kind}, {replicas} replicas"
                + ("" if ok else " (a restart would drop traffic)"),
            )
        if check == "no_unfinished_child_chains":
            gen = dep.get("metadata", {}).get("generation", 0)
            done = status.get("observedGeneration", 0) >= gen and status.get(
                "updatedReplicas", 0
            ) == spec.get("replicas", 1)
            return ActionResult(
                ok=done,
                detail="no rollout in progress" if done else "a rollout is still in progress",
            )
        return ActionResult(ok=False, detail=f"pre-check {check!r} is not available on Kubernetes")
