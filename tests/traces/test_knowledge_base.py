"""Knowledge base: persistence across reopen, schema migration, recognition of a known anomaly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tools.traces.fingerprint import Fingerprint
from tools.traces.knowledge_base import (
    MIGRATIONS,
    SCHEMA_VERSION,
    KnowledgeBase,
    KnowledgeBaseError,
)


def fp(
    root: str = "InferenceRPC::/v1/infer",
    reason: str = "timeout/hang",
    vec: list[float] | None = None,
    logs: list[str] | None = None,
) -> Fingerprint:
    return Fingerprint(
        structure_fingerprint=f"span_hash_tree:abc::depth4::error@{root}",
        structure_vector=vec or [1.0, 0.0, 2.0, 0.5],
        metric_signature={
            "latency_spike": True,
            "hung_spans": True,
            "callback_drop": True,
            "retry_peak": False,
        },
        log_signature=logs or ["TimeoutError", "TIMEOUT", "deadline exceeded"],
        root_span=root,
        reason=reason,
    )


def test_persists_across_reopen_and_returns_known_fix(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(path) as kb:
        fid = kb.record(fp(), seen_ns=10, count=4, cluster_key="c1")
        assert kb.match(fp()) is None  # nothing confirmed yet: no archived root-cause node
        kb.confirm(
            fid,
            "InferenceRPC::/v1/infer",
            strategy="switch_model_version:v3.1.5",
            description="GPU queue",
        )
    with KnowledgeBase(path) as kb:
        entry = kb.get(fid)
        assert entry.occurrences == 4 and entry.confirmed_root_causes == ["InferenceRPC::/v1/infer"]
        m = kb.match(fp(vec=[1.0, 0.1, 2.0, 0.4]))
        assert m is not None and m.fingerprint_id == fid
        assert (
            m.root_cause == "InferenceRPC::/v1/infer"
            and m.strategy == "switch_model_version:v3.1.5"
        )
        assert m.score > 0.85 and m.details.metric_hits >= 2 and m.details.log_hits >= 2
        kb.record(fp(), seen_ns=20)
        assert kb.get(fid).occurrences == 5 and kb.get(fid).last_seen_ns == 20


def test_unrelated_anomaly_is_not_matched(tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        fid = kb.record(fp())
        kb.confirm(fid, "InferenceRPC::/v1/infer", strategy="restart")
        other = Fingerprint(
            structure_fingerprint="span_hash_tree:zzz::depth2::error@WebhookDeliver::POST /hook",
            structure_vector=[0.0, 3.0, 0.0, -1.0],
            metric_signature={"error_spike": True, "retry_peak": True},
            log_signature=["HTTPError", "503"],
            root_span="WebhookDeliver::POST /hook",
            reason="retry exhausted",
        )
        assert kb.match(other) is None
        # same structure but the root-cause node was never archived: the rule refuses it
        assert kb.match(fp(root="LLMAdapter::chat_completion")) is None


def test_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO fingerprints VALUES (?, ?, ?, ?, ?, 1, 1, 3)",
        (
            fp().fingerprint_id,
            fp().structure_fingerprint,
            fp().root_span,
            fp().reason,
            fp().model_dump_json(),
        ),
    )
    db.commit()
    db.close()
    with KnowledgeBase(path) as kb:
        assert kb.schema_version == SCHEMA_VERSION == 2
        assert kb.get(fp().fingerprint_id).occurrences == 3
        kb.record(fp(), cluster_key="k")  # the v2 clusters table exists
        assert kb.get(fp().fingerprint_id).kmeans_cluster is None


def test_refuses_newer_schema_and_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(path) as kb, pytest.raises(KnowledgeBaseError, match="unknown fingerprint"):
        kb.confirm("nope", "A::b")
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    db.close()
    with pytest.raises(KnowledgeBaseError, match="newer"):
        KnowledgeBase(path)


def test_default_path_is_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TAMO_KB_PATH", raising=False)
    with KnowledgeBase() as kb:
        assert Path(kb.path) == tmp_path / "traces_kb.sqlite"


def test_recluster_assigns_kmeans_ids(tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        for i in range(6):
            vec = [1.0, 0.0, 0.0, i * 0.01] if i < 3 else [0.0, 1.0, 0.0, i * 0.01]
            kb.record(fp(root=f"S{i}::op", vec=vec))
        k, sil = kb.recluster(max_k=4)
        assert k == 2 and sil > 0.5
        clusters = {e.root_span: e.kmeans_cluster for e in kb.entries()}
        assert clusters["S0::op"] == clusters["S2::op"] != clusters["S4::op"]
