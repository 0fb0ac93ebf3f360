"""Scores of a ranking and of a fault-type prediction, as the RCA literature defines them.

Acc@k: share of cases whose true root cause is among the top k. Avg@5: mean of Acc@1..Acc@5.
Fault type: macro precision/recall/F1 over the true labels of the system (a prediction of
"unknown" counts as wrong), and plain accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import precision_recall_fscore_support


def accuracy_at(truths: Sequence[str], rankings: Sequence[Sequence[str]], k: int) -> float:
    if not truths:
        return 0.0
    return sum(t in list(r)[:k] for t, r in zip(truths, rankings, strict=True)) / len(truths)


def ranking_scores(truths: Sequence[str], rankings: Sequence[Sequence[str]]) -> dict[str, float]:
    acc = {k: accuracy_at(truths, rankings, k) for k in range(1, 6)}
    return {
        "acc@1": round(acc[1], 4),
        "acc@3": round(acc[3], 4),
        "acc@5": round(acc[5], 4),
        "avg@5": round(sum(acc.values()) / 5, 4),
    }


def fault_type_scores(
    truths: Sequence[str], preds: Sequence[str | None]
) -> dict[str, float | None]:
    if not truths or all(p is None for p in preds):
        return {"macro_f1": None, "precision": None, "recall": None, "accuracy": None}
    labels = sorted(set(truths))
    pred = [p if p is not None else "unknown" for p in preds]
    p, r, f, _ = precision_recall_fscore_support(
        truths, pred, labels=labels, average="macro", zero_division=0
    )
    acc = sum(t == q for t, q in zip(truths, pred, strict=True)) / len(truths)
    return {
        "macro_f1": round(float(f), 4),
        "precision": round(float(p), 4),
        "recall": round(float(r), 4),
        "accuracy": round(acc, 4),
    }
