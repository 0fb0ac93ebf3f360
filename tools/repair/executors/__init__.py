"""Executors: how an action is performed on a testbed, a Kubernetes cluster or a webhook."""

from __future__ import annotations

from tools.repair.executors.base import ActionResult, Executor, HttpCaller
from tools.repair.executors.kubernetes import KubernetesExecutor
from tools.repair.executors.testbed import TestbedExecutor
from tools.repair.executors.webhook import WebhookExecutor

__all__ = [
    "ActionResult",
    "Executor",
    "HttpCaller",
    "KubernetesExecutor",
    "TestbedExecutor",
    "WebhookExecutor",
]
