"""Label sets -> the ``service``/``pod``/``labels`` columns of the telemetry schemas.

Why: Prometheus series and Loki streams carry identity as free-form labels whose names depend on
who scraped or shipped them (kube-state-metrics, cAdvisor, OpenTelemetry, promtail). Tools match
entities by ``service`` and ``pod``, so every backend derives them the same way, in this order.
"""

from __future__ import annotations

from collections.abc import Mapping

from tools.telemetry.ingest.common import labels_json
from tools.telemetry.model import service_from_pod

POD_LABELS = ("pod", "pod_name", "k8s_pod_name", "kubernetes_pod_name")
SERVICE_LABELS = (
    "service",
    "service_name",
    "app",
    "app_kubernetes_io_name",
    "k8s_deployment_name",
    "container",
)
# Labels that name a container but not a workload (the pause container, cgroup roll-ups).
_NOT_A_SERVICE = {"", "POD"}


def canonical_labels(labels: Mapping[str, str]) -> str:
    """The ``labels`` column, exactly as the file parsers write it, ``__name__`` left out."""
    return labels_json({k: v for k, v in labels.items() if k != "__name__"})


def pod_of(labels: Mapping[str, str]) -> str | None:
    for key in POD_LABELS:
        value = labels.get(key)
        if value:
            return value
    return None


def service_of(labels: Mapping[str, str], first: str | None = None) -> str | None:
    """The workload a label set belongs to: an explicit service label, else the pod's service,
    else the scrape ``job``. ``first`` is a label to try before the usual ones."""
    keys = (first, *SERVICE_LABELS) if first else SERVICE_LABELS
    for key in keys:
        value = labels.get(key)
        if value is not None and value not in _NOT_A_SERVICE:
            return value
    pod = pod_of(labels)
    if pod:
        return service_from_pod(pod)
    return labels.get("job") or None
