"""Generalisation protocols: which labelled cases may train the ranker/T3 when a case is scored.

Why these splits: every labelled part (the root-cause ranker with its calibrator, the fault-type
classifier T3) must be scored on cases it could not have memorised. Each protocol yields folds
``(name, system, test indices, train indices)`` over one pooled list of cases from every system:

* ``lofo`` (leave one fault type out): test = one system's cases of one fault type; train = every
  case of *any* system whose fault type differs (so the type's signature is never seen).
* ``lodo`` (leave one day/run out): test = one contiguous block of a system's cases; train = all
  other cases. Sock Shop's blocks are its runs 1-3; each Nezha system has one day here, so its
  cases are cut into ``BLOCKS`` contiguous blocks by injection order, the closest proxy we have
  for a held-out day (the same day, but periods the model never saw).
* ``cross-system``: test = one system; train = the other systems.
* ``OB->TT`` / ``TT->OB``: train on one Nezha system only, test on the other.

T1 and T2's attention are label-free and trained per dataset on its own telemetry (what a
deployment does with its own history); only the labelled parts follow the folds.
"""

from __future__ import annotations

from collections.abc import Iterator

from tools.telemetry.model import LabelledCase

BLOCKS = 3
PROTOCOLS = ("lofo", "lodo", "cross-system", "OB->TT", "TT->OB")
Fold = tuple[str, str, list[int], list[int]]  # (protocol, system, test, train)


def _block(case: LabelledCase, order: dict[str, list[str]]) -> str:
    if case.system == "SockShop":
        return case.case_id.rsplit("/", 1)[-1]  # the run
    ids = order[case.system]
    return str(ids.index(case.case_id) * BLOCKS // len(ids))


def folds(cases: list[LabelledCase], protocol: str) -> Iterator[Fold]:
    """The folds of ``protocol`` over ``cases`` (see the module doc)."""
    systems = sorted({c.system for c in cases})
    everyone = range(len(cases))
    if protocol == "lofo":
        for s in systems:
            for t in sorted({c.fault_type for c in cases if c.system == s}):
                test = [i for i in everyone if cases[i].system == s and cases[i].fault_type == t]
                train = [i for i in everyone if cases[i].fault_type != t]
                yield protocol, s, test, train
    elif protocol == "lodo":
        order: dict[str, list[str]] = {}
        for s in systems:
            mine = [c for c in cases if c.system == s]
            mine.sort(key=lambda c: (c.injected_at is None, c.injected_at, c.case_id))
            order[s] = [c.case_id for c in mine]
        for s in systems:
            for b in sorted({_block(c, order) for c in cases if c.system == s}):
                test = [
                    i for i in everyone if cases[i].system == s and _block(cases[i], order) == b
                ]
                train = [i for i in everyone if i not in set(test)]
                yield protocol, s, test, train
    elif protocol == "cross-system":
        for s in systems:
            test = [i for i in everyone if cases[i].system == s]
            yield protocol, s, test, [i for i in everyone if cases[i].system != s]
    elif "->" in protocol:
        src, dst = protocol.split("->")
        if {src, dst} <= set(systems):
            test = [i for i in everyone if cases[i].system == dst]
            yield protocol, dst, test, [i for i in everyone if cases[i].system == src]
    else:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
