"""The learned ranking corroborated by where anomalous traces start."""

from __future__ import annotations

from agent.corroborate import corroborate
from tools.learned.results import RankedEntity, RootCauseRanking
from tools.traces.results import TraceAnalysis


def _ranking(*scores: tuple[str, float]) -> RootCauseRanking:
    return RootCauseRanking(ranking=[RankedEntity(entity=e, score=s) for e, s in scores])


def _analysis(**sizes: int) -> TraceAnalysis:
    from tools.traces.results import TraceCluster

    clusters = []
    for i, (svc, n) in enumerate(sizes.items()):
        clusters.append(
            TraceCluster.model_construct(
                cluster_id=f"c{i}",
                size=n,
                root_span=f"{svc}::op",
                reason="latency",
                fingerprint_id="f",
            )
        )
    return TraceAnalysis.model_construct(clusters=clusters)


def test_a_near_tie_goes_to_where_the_traces_start() -> None:
    ranked, note = corroborate(
        _ranking(("checkout", 1.0), ("payment", 0.95)), _analysis(payment=90, checkout=10)
    )
    assert ranked.services == ["payment", "checkout"]
    assert note and "90/100" in note and "a tie" in note


def test_a_clear_ranking_stands_and_the_disagreement_is_said() -> None:
    ranked, note = corroborate(
        _ranking(("db", 1.0), ("payment", 0.5)), _analysis(payment=90, db=10)
    )
    assert ranked.services == ["db", "payment"]
    assert note and "the traces disagree" in note


def test_agreement_and_no_trace_evidence() -> None:
    ranking = _ranking(("db", 1.0), ("api", 0.98))
    assert corroborate(ranking, _analysis(db=5))[0] is ranking
    assert corroborate(ranking, None) == (ranking, None)
    assert corroborate(ranking, _analysis()) == (ranking, None)
