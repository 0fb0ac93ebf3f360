"""The anomaly knowledge base: fingerprints, clusters, confirmed root causes and working fixes.

Why SQLite: one file, transactional, no server, readable by any tool; the schema is versioned
(``schema_version`` table) and migrated forward step by step on open, so a knowledge base
written by an older release keeps its history. A recurring anomaly is recognised with the
seed's rule (see :func:`tools.traces.fingerprint.match_score`); the answer carries the confirmed
root cause, the strategy that fixed it last time and the match score.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tools.core.errors import TamoError
from tools.core.settings import Settings
from tools.traces.clustering import recluster
from tools.traces.config import MatchRule
from tools.traces.fingerprint import Fingerprint, MatchScore, match_score

MIGRATIONS: tuple[str, ...] = (
    # v1: fingerprints, confirmed root causes, fixes
    """
    CREATE TABLE fingerprints (
        fingerprint_id TEXT PRIMARY KEY,
        structure TEXT NOT NULL,
        root_span TEXT NOT NULL,
        reason TEXT NOT NULL,
        body TEXT NOT NULL,
        first_seen_ns INTEGER NOT NULL,
        last_seen_ns INTEGER NOT NULL,
        occurrences INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE root_causes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint_id TEXT NOT NULL REFERENCES fingerprints(fingerprint_id),
        root_span TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        confirmed_by TEXT NOT NULL DEFAULT '',
        confirmed_ns INTEGER NOT NULL
    );
    CREATE TABLE fixes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint_id TEXT NOT NULL REFERENCES fingerprints(fingerprint_id),
        strategy TEXT NOT NULL,
        outcome TEXT NOT NULL,
        recorded_ns INTEGER NOT NULL
    );
    """,
    # v2: clusters of fingerprints (analysis clusters and periodic K-Means re-clustering)
    """
    CREATE TABLE clusters (
        cluster_key TEXT PRIMARY KEY,
        fingerprint_id TEXT NOT NULL REFERENCES fingerprints(fingerprint_id),
        size INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    );
    ALTER TABLE fingerprints ADD COLUMN kmeans_cluster INTEGER;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class KnowledgeBaseError(TamoError):
    """The knowledge base file is unreadable, newer than this code, or an id is unknown."""


class KnownMatch(BaseModel):
    """A recurring anomaly recognised in the knowledge base."""

    fingerprint_id: str
    root_cause: str
    description: str = ""
    strategy: str | None = None
    score: float
    details: MatchScore


class KnowledgeEntry(BaseModel):
    fingerprint_id: str
    root_span: str
    reason: str
    occurrences: int
    first_seen_ns: int
    last_seen_ns: int
    confirmed_root_causes: list[str]
    fixes: list[dict[str, str]]
    kmeans_cluster: int | None = None
    fingerprint: Fingerprint


def default_kb_path(settings: Settings | None = None) -> Path:
    return (settings or Settings()).path("kb_path", "traces_kb.sqlite")


class KnowledgeBase:
    """``KnowledgeBase(path)``; ``path=None`` uses Settings (``kb_path`` or ``data_dir``),
    ``":memory:"`` keeps it in memory."""

    def __init__(self, path: Path | str | None = None, rule: MatchRule | None = None) -> None:
        self.path = str(default_kb_path() if path is None else path)
        self.rule = rule or MatchRule()
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise KnowledgeBaseError(
                f"cannot open knowledge base: {exc}", source=self.path
            ) from exc

    # -- schema ------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise KnowledgeBaseError(
                f"schema version {current} is newer than this code ({SCHEMA_VERSION})",
                source=self.path,
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self._db:  # one transaction per step: a failed step leaves the previous version
                for stmt in filter(str.strip, MIGRATIONS[version - 1].split(";")):
                    self._db.execute(stmt)
                self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    def record(
        self,
        fp: Fingerprint,
        *,
        seen_ns: int | None = None,
        count: int = 1,
        cluster_key: str | None = None,
    ) -> str:
        """Store (or update) a fingerprint and count ``count`` more occurrences; returns its id."""
        fid = fp.fingerprint_id
        now = seen_ns if seen_ns is not None else time.time_ns()
        with self._db:
            self._db.execute(
                """INSERT INTO fingerprints (fingerprint_id, structure, root_span, reason, body,
                       first_seen_ns, last_seen_ns, occurrences)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(fingerprint_id) DO UPDATE SET
                       body = excluded.body,
                       first_seen_ns = MIN(first_seen_ns, excluded.first_seen_ns),
                       last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns),
                       occurrences = occurrences + excluded.occurrences""",
                (
                    fid,
                    fp.structure_fingerprint,
                    fp.root_span,
                    fp.reason,
                    fp.model_dump_json(),
                    now,
                    now,
                    count,
                ),
            )
            if cluster_key is not None:
                self._db.execute(
                    """INSERT INTO clusters (cluster_key, fingerprint_id, size, updated_ns)
                       VALUES (?, ?, ?, ?)
                       ON CONFLICT(cluster_key) DO UPDATE SET size = size + excluded.size,
                           updated_ns = excluded.updated_ns""",
                    (cluster_key, fid, count, now),
                )
        return fid

    def _require(self, fingerprint_id: str) -> None:
        if (
            self._db.execute(
                "SELECT 1 FROM fingerprints WHERE fingerprint_id = ?", (fingerprint_id,)
            ).fetchone()
            is None
        ):
            raise KnowledgeBaseError(f"unknown fingerprint id {fingerprint_id!r}", source=self.path)

    def confirm(
        self,
        fingerprint_id: str,
        root_span: str,
        *,
        strategy: str | None = None,
        outcome: str = "success",
        description: str = "",
        confirmed_by: str = "",
    ) -> None:
        """Archive a confirmed root-cause node (and, if given, the strategy that fixed it)."""
        self._require(fingerprint_id)
        now = time.time_ns()
        with self._db:
            self._db.execute(
                "INSERT INTO root_causes"
                " (fingerprint_id, root_span, description, confirmed_by, confirmed_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                (fingerprint_id, root_span, description, confirmed_by, now),
            )
        if strategy:
            self.record_fix(fingerprint_id, strategy, outcome)

    def record_fix(self, fingerprint_id: str, strategy: str, outcome: str = "success") -> None:
        self._require(fingerprint_id)
        with self._db:
            self._db.execute(
                "INSERT INTO fixes (fingerprint_id, strategy, outcome, recorded_ns)"
                " VALUES (?, ?, ?, ?)",
                (fingerprint_id, strategy, outcome, time.time_ns()),
            )

    # -- reading -----------------------------------------------------------------------------
    def _roots(self, fingerprint_id: str) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT root_span, description"
            " FROM root_causes"
            " WHERE fingerprint_id = ?"
            " ORDER BY confirmed_ns DESC",
            (fingerprint_id,),
        )
        return [(r[0], r[1]) for r in rows]

    def _fix(self, fingerprint_id: str) -> str | None:
        row = self._db.execute(
            "SELECT strategy"
            " FROM fixes"
            " WHERE fingerprint_id = ? AND outcome = 'success'"
            " ORDER BY recorded_ns DESC, id DESC LIMIT 1",
            (fingerprint_id,),
        ).fetchone()
        return row[0] if row else None

    def match(self, fp: Fingerprint) -> KnownMatch | None:
        """The best stored fingerprint with a confirmed root cause that the rule accepts."""
        best: KnownMatch | None = None
        rows = self._db.execute(
            "SELECT DISTINCT f.fingerprint_id, f.body FROM fingerprints f"
            " JOIN root_causes r USING (fingerprint_id)"
        ).fetchall()
        for fid, body in rows:
            known = Fingerprint.model_validate_json(body)
            roots = self._roots(fid)
            details = match_score(fp, known, {r for r, _ in roots}, self.rule)
            if details.matched and (best is None or details.score > best.score):
                best = KnownMatch(
                    fingerprint_id=fid,
                    root_cause=roots[0][0],
                    description=roots[0][1],
                    strategy=self._fix(fid),
                    score=details.score,
                    details=details,
                )
        return best

    def get(self, fingerprint_id: str) -> KnowledgeEntry:
        row = self._db.execute(
            "SELECT fingerprint_id, root_span, reason, occurrences, first_seen_ns, last_seen_ns,"
            " kmeans_cluster, body"
            " FROM fingerprints"
            " WHERE fingerprint_id = ?",
            (fingerprint_id,),
        ).fetchone()
        if row is None:
            raise KnowledgeBaseError(f"unknown fingerprint id {fingerprint_id!r}", source=self.path)
        fixes = self._db.execute(
            "SELECT strategy, outcome FROM fixes WHERE fingerprint_id = ? ORDER BY recorded_ns",
            (fingerprint_id,),
        ).fetchall()
        return KnowledgeEntry(
            fingerprint_id=row[0],
            root_span=row[1],
            reason=row[2],
            occurrences=row[3],
            first_seen_ns=row[4],
            last_seen_ns=row[5],
            kmeans_cluster=row[6],
            confirmed_root_causes=[r for r, _ in self._roots(fingerprint_id)],
            fixes=[{"strategy": s, "outcome": o} for s, o in fixes],
            fingerprint=Fingerprint.model_validate_json(row[7]),
        )

    def entries(self) -> list[KnowledgeEntry]:
        ids = [
            r[0]
            for r in self._db.execute(
                "SELECT fingerprint_id FROM fingerprints ORDER BY last_seen_ns DESC"
            )
        ]
        return [self.get(i) for i in ids]

    def recluster(self, max_k: int = 8, seed: int = 0) -> tuple[int, float]:
        """Periodic K-Means (silhouette-selected k) over stored structure vectors.

        Returns (k, silhouette); each fingerprint gets its K-Means cluster id."""
        rows = self._db.execute("SELECT fingerprint_id, body FROM fingerprints").fetchall()
        vecs = [Fingerprint.model_validate_json(b).structure_vector for _, b in rows]
        if not rows or len({len(v) for v in vecs}) != 1 or not vecs[0]:
            return 0, 0.0
        x = np.asarray(vecs, dtype=float)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
        labels, k, sil = recluster(x, max_k, seed)
        with self._db:
            self._db.executemany(
                "UPDATE fingerprints SET kmeans_cluster = ? WHERE fingerprint_id = ?",
                [(int(lab), fid) for lab, (fid, _) in zip(labels, rows, strict=True)],
            )
        return k, sil
