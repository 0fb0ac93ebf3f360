"""Which span of an anomalous trace is the root, and why (seed ch. 1-2 anomaly types).

Why this precedence: failures propagate *up* (a hung inference makes every ancestor slow and
errored) and *forward* (a trace that stopped never calls its callback), so consequences must not
be blamed. A hung span is the most specific evidence (the deepest one with the largest self
time is where time went); a child module run twice concurrently (never so in normal traffic) is
a fork blamed on the parent that dispatched twice; siblings repeated beyond normal point at the
retried module; an error is blamed on the deepest span whose own children succeeded; extra
roots are a fork; a missing expected child is blamed on the parent that failed to call it;
with none of these the slowest span by self time is named.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from tools.traces.detector import ScoredBatch


class Reason(StrEnum):
    HANG = "timeout/hang"
    RETRY_STORM = "retry storm"
    RETRY_EXHAUSTED = "retry exhausted"
    ERROR = "error"
    FORKED = "forked path"
    MISSING = "missing downstream"
    LATENCY = "latency"


def explain(batch: ScoredBatch, t: int) -> tuple[int, Reason]:
    """(index of the root span in the forest, reason) for trace ``t``."""
    f, s = batch.forest, batch.signals
    lo, hi = int(f.offsets[t]), int(f.offsets[t + 1])
    idx = np.arange(lo, hi)
    depth = f.depth[lo:hi]

    hung = idx[s.hung[lo:hi]]
    if len(hung):
        return int(hung[np.lexsort((-depth[hung - lo], -s.self_z[hung]))[0]]), Reason.HANG

    forks = idx[s.fork_at[lo:hi]]
    if len(forks):
        return int(forks[np.argmin(depth[forks - lo])]), Reason.FORKED

    rep = idx[s.repeat_excess[lo:hi] > 0]
    if len(rep):
        top = rep[np.argmax(s.repeat_excess[rep])]
        group = rep[(f.parent[rep] == f.parent[top]) & (f.module[rep] == f.module[top])]
        group = group[np.argsort(f.start_ns[group])]
        last = int(group[-1])
        if s.error[group].all():
            return last, Reason.RETRY_EXHAUSTED
        return last, Reason.RETRY_STORM

    err = idx[s.error[lo:hi] & ~s.recovered[lo:hi]]
    if len(err):
        err_children = np.bincount(f.parent[err][f.parent[err] >= 0], minlength=len(f.parent))
        origin = err[err_children[err] == 0]
        pick = origin if len(origin) else err
        return int(pick[np.lexsort((f.start_ns[pick], -depth[pick - lo]))[0]]), Reason.ERROR

    roots = idx[(f.parent[lo:hi] < 0) & ~f.orphan[lo:hi]]
    if len(roots) > 1:
        return int(roots[0]), Reason.FORKED

    miss = idx[s.missing[lo:hi] > 0]
    if len(miss):
        return int(miss[np.lexsort((f.start_ns[miss], -depth[miss - lo]))[0]]), Reason.MISSING

    slow = idx[s.slow[lo:hi]]
    pool = slow if len(slow) else idx
    return int(pool[np.argmax(s.self_z[pool])]), Reason.LATENCY
