"""Which module of an anomalous trace is the root cause, and why (seed ch. 1-2 anomaly types).

Why this precedence: failures propagate *up* (a hung inference makes every ancestor slow and
errored) and *forward* (a trace that stopped never calls its callback), so consequences must not
be blamed. A hung span is the most specific evidence (the deepest one with the largest self
time is where time went); siblings repeated beyond normal while failing point at the retried
module; a child module run twice concurrently (never so in normal traffic) is a fork blamed on
the parent that dispatched twice; an error is blamed on the deepest span whose own children
succeeded; a span whose parent was never exported points at that parent; extra roots are a
fork; a missing expected child is blamed on the parent that failed to call it; with none of
these the slowest span by self time is named.

Why the normal structure matters: what a trace *lacks* is evidence too. A client span (see
:mod:`tools.telemetry.trace_model`) that hung or failed without the callee it always calls
blames the callee: it hung and was never exported, or refused the connection. An orphan's
parent span is missing: the module that normally calls the orphan's module is named, although
none of its spans is in the trace. Retries wrapped in the caller's client spans blame what
failed inside the attempts (the retried callee), not the caller's wrapper. Names are the
input's spelling of ``service::operation``, from the spans or the normal traffic's modules.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import NamedTuple

import numpy as np

from tools.traces.detector import ScoredBatch


class Reason(StrEnum):
    HANG = "timeout/hang"
    RETRY_STORM = "retry storm"
    RETRY_EXHAUSTED = "retry exhausted"
    ERROR = "error"
    FORKED = "forked path"
    LOST_SPAN = "span never exported"
    MISSING = "missing downstream"
    LATENCY = "latency"


class RootCause(NamedTuple):
    span: int  # the span in the forest the evidence hangs on (path and structure start here)
    reason: Reason
    module: str  # the blamed ``service::operation``: the span's own, or one absent from the trace


def _name(batch: ScoredBatch, span: int) -> str:
    return batch.forest.module_names[batch.forest.module[span]]


def _absent_expected_child(batch: ScoredBatch, span: int, children: np.ndarray) -> int:
    """Global id of a module ``span`` always calls but did not in this trace (-1: none)."""
    base, s = batch.base, batch.signals
    g = int(s.gmod[span])
    if g < 0:
        return -1
    present = set(s.gmod[children].tolist())
    absent = [int(c) for c in base.expected_children.get(g, ()) if int(c) not in present]
    return absent[0] if absent else -1


def _callee_to_blame(batch: ScoredBatch, span: int, children: np.ndarray) -> str:
    """The absent callee of a client span or of a span that timed out waiting, else ``span``.

    Why: a client span does no work of its own (its time is wire time), so when it hangs or
    fails without the callee's span under it, the callee hung and was never exported or refused
    the call. A span that waited far beyond normal and then *failed* gave up on the child it
    always calls (a timeout); one that never ended, or ended late without failing, and a span
    that failed fast without its usual child, stopped by itself and are the culprit."""
    s = batch.signals
    g = int(s.gmod[span])
    child = _absent_expected_child(batch, span, children)
    if child < 0:
        return _name(batch, span)
    timed_out = bool(s.error[span] and (s.hung[span] or s.slow[span]))
    if batch.base.client_like[g] or (timed_out and not batch.forest.unfinished[span]):
        return batch.base.names[child]
    return _name(batch, span)


def _kids(batch: ScoredBatch, lo: int, hi: int, span: int) -> np.ndarray:
    return lo + np.nonzero(batch.forest.parent[lo:hi] == span)[0]


def _retried(batch: ScoredBatch, lo: int, hi: int, attempts: np.ndarray) -> RootCause:
    """A retry storm: the module that failed inside the attempts, else the retried module."""
    f, s = batch.forest, batch.signals
    last = int(attempts[-1])
    exhausted = bool(s.error[attempts].all())
    reason = Reason.RETRY_EXHAUSTED if exhausted else Reason.RETRY_STORM
    inside = np.zeros(hi - lo, dtype=bool)
    inside[attempts - lo] = True
    for _ in range(int(f.depth[lo:hi].max(initial=0))):  # descendants of the attempts
        p = f.parent[lo:hi]
        inside |= (p >= 0) & inside[np.maximum(p - lo, 0)]
    inner = lo + np.nonzero(inside & s.error[lo:hi])[0]
    inner = inner[~np.isin(inner, attempts)]
    if len(inner):
        failing_kids = np.bincount(f.parent[inner][f.parent[inner] >= 0], minlength=len(f.parent))
        origins = inner[failing_kids[inner] == 0]
        if len(origins):
            module = Counter(_name(batch, int(i)) for i in origins).most_common(1)[0][0]
            span = max(int(i) for i in origins if _name(batch, int(i)) == module)
            return RootCause(span, reason, module)
    failed = [int(a) for a in attempts if s.error[a]]
    if failed:
        a = failed[-1]
        return RootCause(a, reason, _callee_to_blame(batch, a, _kids(batch, lo, hi, a)))
    return RootCause(last, reason, _name(batch, last))


def _lost_parent(batch: ScoredBatch, lo: int, hi: int) -> RootCause | None:
    """Orphans whose parent was never exported: the module that normally calls them."""
    f, base = batch.forest, batch.base
    orphans = lo + np.nonzero(f.orphan[lo:hi])[0]
    usual = {
        o: int(base.usual_parent[g])
        for o, g in zip(orphans.tolist(), batch.signals.gmod[orphans].tolist(), strict=True)
        if g >= 0 and base.usual_parent[g] >= 0
    }
    if not usual:
        return None
    parent = Counter(usual.values()).most_common(1)[0][0]
    span = min(o for o, p in usual.items() if p == parent)
    return RootCause(span, Reason.LOST_SPAN, base.names[parent])


def root_cause(batch: ScoredBatch, t: int) -> RootCause:
    """The root cause of trace ``t``: the span the evidence hangs on, the reason, the module."""
    f, s = batch.forest, batch.signals
    lo, hi = int(f.offsets[t]), int(f.offsets[t + 1])
    idx = np.arange(lo, hi)
    depth = f.depth[lo:hi]

    hung = idx[s.hung[lo:hi]]
    if len(hung):
        h = int(hung[np.lexsort((-depth[hung - lo], -s.self_z[hung]))[0]])
        return RootCause(h, Reason.HANG, _callee_to_blame(batch, h, _kids(batch, lo, hi, h)))

    rep = idx[s.repeat_excess[lo:hi] > 0]
    if len(rep):
        top = rep[np.argmax(s.repeat_excess[rep])]
        group = rep[(f.parent[rep] == f.parent[top]) & (f.module[rep] == f.module[top])]
        return _retried(batch, lo, hi, group[np.argsort(f.start_ns[group])])

    forks = idx[s.fork_at[lo:hi]]
    if len(forks):
        k = int(forks[np.argmin(depth[forks - lo])])
        return RootCause(k, Reason.FORKED, _name(batch, k))

    err = idx[s.error[lo:hi] & ~s.recovered[lo:hi]]
    if len(err):
        err_children = np.bincount(f.parent[err][f.parent[err] >= 0], minlength=len(f.parent))
        origin = err[err_children[err] == 0]
        pick = origin if len(origin) else err
        e = int(pick[np.lexsort((f.start_ns[pick], -depth[pick - lo]))[0]])
        return RootCause(e, Reason.ERROR, _callee_to_blame(batch, e, _kids(batch, lo, hi, e)))

    lost = _lost_parent(batch, lo, hi)
    if lost is not None:
        return lost

    roots = idx[(f.parent[lo:hi] < 0) & ~f.orphan[lo:hi]]
    if len(roots) > 1:
        return RootCause(int(roots[0]), Reason.FORKED, _name(batch, int(roots[0])))

    miss = idx[s.missing[lo:hi] > 0]
    if len(miss):
        m = int(miss[np.lexsort((f.start_ns[miss], -depth[miss - lo]))[0]])
        return RootCause(m, Reason.MISSING, _name(batch, m))

    slow = idx[s.slow[lo:hi]]
    pool = slow if len(slow) else idx
    p = int(pool[np.argmax(s.self_z[pool])])
    return RootCause(p, Reason.LATENCY, _name(batch, p))


def explain(batch: ScoredBatch, t: int) -> tuple[int, Reason]:
    """(span, reason) of :func:`root_cause`, for callers that only need the span."""
    rc = root_cause(batch, t)
    return rc.span, rc.reason
