"""Root cause from two independent views: the learned ranking (T2) and the call-chain analytics.

Why: T2 scores services by how much their channels moved, so a caller whose latency *includes* a
slow callee can score as high as the callee; the trace analytics explain each anomalous trace by
the span where the anomaly starts. When T2's top two are nearly tied and most anomalous traces
start at the runner-up, the runner-up is the better answer; when the views disagree beyond that,
the ranking stands and the report shows both, each with its evidence. Nothing here reads labels:
both views come from the window's telemetry.
"""

from __future__ import annotations

from collections import Counter

from tools.learned.results import RankedEntity, RootCauseRanking
from tools.telemetry.model import Modality
from tools.traces import TraceAnalysis
from tools.traces.alerting import TraceAlert

MARGIN = 0.1  # T2 scores this close to the top count as a tie
MIN_SHARE = 0.5  # the traces' verdict counts when it explains at least half the anomalies


def origin_votes(analysis: TraceAnalysis) -> tuple[Counter[str], int]:
    """Anomalous traces per service where their anomaly starts, and how many were explained."""
    votes: Counter[str] = Counter()
    for c in analysis.clusters:
        votes[c.root_span.split("::", 1)[0]] += c.size
    return votes, sum(votes.values())


def corroborate(
    ranking: RootCauseRanking, analysis: TraceAnalysis | None
) -> tuple[RootCauseRanking, str | None]:
    """The ranking to report (maybe with the traces' choice first) and a note saying why."""
    if analysis is None or not ranking.ranking:
        return ranking, None
    votes, total = origin_votes(analysis)
    if not total:
        return ranking, None
    service, n = votes.most_common(1)[0]
    top = ranking.ranking[0]
    said = f"trace analytics: {n}/{total} anomalous traces start at {service}"
    if service == top.entity:
        return ranking, f"{said}, as T2 ranks first"
    cand = next((r for r in ranking.ranking if r.entity == service), None)
    t2 = f"T2 ranks {top.entity} {top.score:.2f}" + (
        f", {service} {cand.score:.2f}" if cand else f", {service} not in its top"
    )
    if cand is not None and n / total >= MIN_SHARE and cand.score >= top.score - MARGIN:
        rest = [r for r in ranking.ranking if r.entity != service]
        reordered = ranking.model_copy(update={"ranking": [cand, *rest]})
        return reordered, f"{said}; {t2} (a tie): {service} reported first"
    return ranking, f"{said}; {t2}: the ranking stands, the traces disagree"


def confirm_with_alert(
    ranking: RootCauseRanking | None, alert: TraceAlert
) -> tuple[RootCauseRanking, str]:
    """The ranking to report given the live alert's triage, and a note saying why.

    The triage explains every anomalous trace by its chain's structure (a callee starting its
    own traces, orphaned spans, a caller timing out on an absent callee) and by what the
    system's published catalogue says its error codes mean, including whom a code blames; when
    at least half the anomalous traces point at one service, that service is reported first and
    T2's choice stays beside it. Without a T2 ranking the triage is the ranking."""
    said = (
        f"live trace triage: {alert.share:.0%} of {alert.anomalous} anomalous traces point at "
        f"{alert.suspect} ({alert.fault_type})"
    )
    mine = RankedEntity(entity=alert.suspect, score=alert.share)
    if ranking is None or not ranking.ranking:
        alone = RootCauseRanking(ranking=[mine], modalities=[Modality.TRACES], method="triage")
        return alone, f"{said}; no T2 ranking: the triage ranks alone"
    top = ranking.ranking[0]
    if top.entity == alert.suspect:
        return ranking, f"{said}, as T2 ranks first"
    if alert.share < MIN_SHARE:
        return ranking, f"{said}; T2 ranks {top.entity} {top.score:.2f}: the ranking stands"
    cand = next((r for r in ranking.ranking if r.entity == alert.suspect), mine)
    rest = [r for r in ranking.ranking if r.entity != alert.suspect]
    reordered = ranking.model_copy(update={"ranking": [cand, *rest]})
    return reordered, f"{said}; T2 ranks {top.entity} {top.score:.2f}: {alert.suspect} first"
