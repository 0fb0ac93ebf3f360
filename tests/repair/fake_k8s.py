"""A loopback HTTP server that answers like the Kubernetes API server, for two resources.

Shapes follow the Kubernetes API reference (https://kubernetes.io/docs/reference/kubernetes-api/):
``apps/v1`` Deployment (workload-resources/deployment-v1: GET/PATCH
``/apis/apps/v1/namespaces/{namespace}/deployments/{name}`` and its ``/scale`` subresource,
an ``autoscaling/v1`` Scale), the ``v1`` Status object for errors
(common-definitions/status), and ``?dryRun=All`` (using-api/api-concepts, "Dry-run": the
request is processed but nothing is persisted). Only what the executor sends is implemented:
strategic merge patch of the pod template annotations and merge patch of ``spec.replicas``;
other content types get 415 like the real server.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def deployment(name: str, ns: str = "default", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generation": 1,
            "resourceVersion": "1000",
            "uid": "7f6c2a56-0d3e-4a5b-9c1d-2b3e4f5a6b7c",
            "labels": labels,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"{name}:1.0"}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def status_failure(code: int, reason: str, message: str, name: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "group": "apps", "kind": "deployments"},
        "code": code,
    }


class FakeKubernetes:
    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.token: str | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append(
                    {
                        "method": method,
                        "path": url.path,
                        "query": query,
                        "content_type": self.headers.get("Content-Type"),
                        "auth": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
                if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, status_failure(401, "Unauthorized", "Unauthorized"))
                parts = url.path.strip("/").split("/")
                # apis/apps/v1/namespaces/{ns}/deployments/{name}[/scale]
                if parts[:3] != ["apis", "apps", "v1"] or len(parts) < 7:
                    return self._send(
                        404,
                        status_failure(
                            404, "NotFound", "the server could not find the requested resource"
                        ),
                    )
                ns, name, sub = parts[4], parts[6], (parts[7] if len(parts) > 7 else "")
                dep = fake.deployments.get((ns, name))
                if dep is None:
                    return self._send(
                        404,
                        status_failure(
                            404, "NotFound", f'deployments.apps "{name}" not found', name
                        ),
                    )
                dry = query.get("dryRun") == "All"
                target = copy.deepcopy(dep) if dry else dep
                if method == "GET":
                    return self._send(200, fake.scale(target) if sub == "scale" else target)
                ctype = self.headers.get("Content-Type", "")
                if sub == "scale":
                    if ctype != "application/merge-patch+json":
                        return self._send(
                            415, status_failure(415, "UnsupportedMediaType", f"unsupported {ctype}")
                        )
                    target["spec"]["replicas"] = body["spec"]["replicas"]
                    if not dry:
                        target["metadata"]["generation"] += 1
                    return self._send(200, fake.scale(target))
                if ctype != "application/strategic-merge-patch+json":
                    return self._send(
                        415, status_failure(415, "UnsupportedMediaType", f"unsupported {ctype}")
                    )
                ann = body["spec"]["template"]["metadata"]["annotations"]
                meta = target["spec"]["template"]["metadata"]
                meta.setdefault("annotations", {}).update(ann)
                target["metadata"]["generation"] += 1
                return self._send(200, target)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @staticmethod
    def scale(dep: dict[str, Any]) -> dict[str, Any]:
        m = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"],
                "namespace": m["namespace"],
                "resourceVersion": m["resourceVersion"],
                "uid": m["uid"],
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {"replicas": dep["status"]["replicas"], "selector": f"app={m['name']}"},
        }

    def __enter__(self) -> FakeKubernetes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
