"""Executors against loopback servers: a fake Kubernetes API server answering with the shapes of
the Kubernetes API reference (see fake_k8s.py for the pages), and a recording webhook."""

from __future__ import annotations

import pytest

from tests.repair.fake_k8s import FakeKubernetes, deployment
from tests.repair.webhook_server import WebhookServer
from tools.core.errors import BackendError
from tools.repair.engine import PlannedAction
from tools.repair.executors import Executor, KubernetesExecutor, WebhookExecutor
from tools.repair.executors.kubernetes import RESTART_ANNOTATION


def act(type_: str, target: str, **params: object) -> PlannedAction:
    return PlannedAction(seq_no=1, type=type_, target=target, executor="x", params=params)


@pytest.fixture
def k8s() -> FakeKubernetes:
    with FakeKubernetes() as fake:
        fake.token = "s3cret"
        fake.deployments[("shop", "cartservice")] = deployment("cartservice", "shop", replicas=2)
        yield fake


def test_rollout_restart_dry_run_then_execute(k8s: FakeKubernetes) -> None:
    ex = KubernetesExecutor(k8s.url, namespace="shop", token="s3cret")
    assert isinstance(ex, Executor)
    a = act("rollout_restart", "cartservice")
    dry = ex.dry_run(a, key="t:1")
    assert dry.ok and dry.dry_run and "would restart" in dry.detail
    stored = k8s.deployments[("shop", "cartservice")]
    assert "annotations" not in stored["spec"]["template"]["metadata"]  # dry run persisted nothing
    req = k8s.requests[-1]
    assert req["method"] == "PATCH"
    assert req["path"] == "/apis/apps/v1/namespaces/shop/deployments/cartservice"
    assert req["query"] == {"dryRun": "All", "fieldManager": "tamo-rca"}
    assert req["content_type"] == "application/strategic-merge-patch+json"
    assert req["auth"] == "Bearer s3cret"

    res = ex.execute(a, key="t:1")
    assert res.ok and "generation=2" in res.detail
    ann = stored["spec"]["template"]["metadata"]["annotations"]
    assert RESTART_ANNOTATION in ann
    assert "dryRun" not in k8s.requests[-1]["query"]
    undo = ex.rollback(a, key="t:1", previous=res.previous)
    assert undo.ok and "no inverse" in undo.detail


def test_scale_records_previous_and_rolls_back(k8s: FakeKubernetes) -> None:
    ex = KubernetesExecutor(k8s.url, namespace="default", token="s3cret")
    a = act("scale", "shop/cartservice", replicas=4)
    dry = ex.dry_run(a, key="t:1")
    assert dry.ok and dry.detail == "would scale shop/cartservice 2 -> 4"
    assert k8s.deployments[("shop", "cartservice")]["spec"]["replicas"] == 2
    res = ex.execute(a, key="t:1")
    assert res.ok and res.previous == {"replicas": 2}
    assert k8s.deployments[("shop", "cartservice")]["spec"]["replicas"] == 4
    assert k8s.requests[-1]["path"].endswith("/deployments/cartservice/scale")
    assert k8s.requests[-1]["content_type"] == "application/merge-patch+json"
    assert k8s.requests[-1]["body"] == {"spec": {"replicas": 4}}
    ex.rollback(a, key="t:1", previous=res.previous)
    assert k8s.deployments[("shop", "cartservice")]["spec"]["replicas"] == 2


def test_prechecks_read_the_deployment(k8s: FakeKubernetes) -> None:
    ex = KubernetesExecutor(k8s.url, namespace="shop", token="s3cret")
    a = act("rollout_restart", "cartservice")
    assert ex.precheck("hot_restart_supported", a).ok
    assert ex.precheck("no_unfinished_child_chains", a).ok
    k8s.deployments[("shop", "cartservice")]["spec"]["replicas"] = 1
    assert not ex.precheck("hot_restart_supported", a).ok
    k8s.deployments[("shop", "cartservice")]["metadata"]["generation"] = 5
    assert "in progress" in ex.precheck("no_unfinished_child_chains", a).detail
    assert not ex.precheck("snapshot_exists", a).ok  # fails closed


def test_api_errors_name_url_status_and_message(k8s: FakeKubernetes) -> None:
    ex = KubernetesExecutor(k8s.url, namespace="shop", token="s3cret")
    with pytest.raises(BackendError) as exc:
        ex.execute(act("rollout_restart", "nope"), key="t:1")
    assert exc.value.status == 404
    assert 'deployments.apps "nope" not found' in str(exc.value)
    assert "/namespaces/shop/deployments/nope" in str(exc.value)
    bad = KubernetesExecutor(k8s.url, namespace="shop", token="wrong")
    with pytest.raises(BackendError, match="HTTP 401"):
        bad.dry_run(act("rollout_restart", "cartservice"), key="t:1")
    dead = KubernetesExecutor("http://127.0.0.1:9", namespace="shop")
    with pytest.raises(BackendError, match="ConnectError"):
        dead.execute(act("rollout_restart", "cartservice"), key="t:1")


def test_webhook_protocol() -> None:
    with WebhookServer(fail_modes={"dry_run"}) as hook:
        ex = WebhookExecutor(hook.url)
        a = act("notify", "cartservice", team="network-oncall")
        assert not ex.dry_run(a, key="repair-1:1").ok
        res = ex.execute(a, key="repair-1:1")
        assert res.ok and res.previous == {"was": "before"}
        ex.rollback(a, key="repair-1:1", previous=res.previous)
        assert [c["mode"] for c in hook.calls] == ["dry_run", "execute", "rollback"]
        call = hook.calls[1]
        assert call["idempotency_key"] == "repair-1:1" == call["key"]
        assert call["params"] == {"team": "network-oncall"}
        assert hook.calls[2]["previous"] == {"was": "before"}
