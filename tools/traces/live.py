"""Live detection and triage: from a sliding window of spans to a verdict per anomalous trace.

Why this module: the alert source (:mod:`tools.traces.alerting`) needs a verdict every quarter
second, not a batch report. The call-chain analytics of :mod:`tools.traces` learn normal
behaviour once from a fault-free baseline (:class:`~tools.traces.detector.NormalModel`:
per-module statistics, WL embedding, autoencoder); each window is then only reconstructed,
scored and explained (root span + reason per anomalous trace), which takes milliseconds, where a
full ``analyze_traces`` would retrain.

Triage names a (module, fault type) for each anomalous trace, from the structure of the chain
and the error codes its spans carry (the seed's "error_code triggered -> rule path", chapter 4):

* a module that starts traces although it never does in the baseline lost the incoming
  context (``context_loss``), and so did the trace its caller started, which lacks it (a trace
  lacking a callee is judged only ``late_grace_s`` after it ended: spans reach the store per
  process, and the callee's, or the trace it started, may still be on the way);
* spans whose parent is missing from the trace (once it ended ``late_grace_s`` ago: the
  parent's process may export later) were orphaned by a module that dropped its own spans: the
  baseline parent of the orphans' module (``span_drop``);
* a hung span (the analytics' ``timeout/hang``), or callers failing with a timeout code while
  the callee's spans are absent or hung, is a hang of the callee (``inference_hang`` when the
  callers' code is a model timeout);
* otherwise the origin span's error code names the fault, blamed on the span itself, on its
  parent (a receiver reporting duplicates blames the sender) or on its callee — as the system's
  published fault catalogue says (``FaultCatalog.error_codes``: data, not code here).

Nothing here knows which fault was injected; the window and the baseline are all it sees.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from tools.core.fault_catalog import ErrorCodeMeaning
from tools.traces.config import TraceConfig
from tools.traces.detector import NormalModel
from tools.traces.reconstruct import TraceForest, reconstruct
from tools.traces.root_cause import Reason, explain

TIMEOUT_CODES = {"MODEL_TIMEOUT", "CALL_TIMEOUT", "DEADLINE_EXCEEDED", "HTTP_504"}


def error_codes(spans: pa.Table) -> list[str | None]:
    """The application error code of each span: its ``error_code`` attribute (the platform's
    own vocabulary), else the ``error_code`` column (an HTTP/gRPC status) of an error span."""
    out: list[str | None] = []
    cols = zip(
        spans["error_code"].to_pylist(),
        spans["attributes"].to_pylist(),
        spans["status"].to_pylist(),
        strict=True,
    )
    for code, attrs, status in cols:
        own = json.loads(attrs).get("error_code") if attrs and '"error_code"' in attrs else None
        out.append(str(own) if own else (code if status == "error" else None))
    return out


@dataclass
class BaselineShape:
    """Structural facts of fault-free traffic: which services start traces, who calls whom."""

    roots: set[str]
    parent_of: dict[str, str]  # service -> its usual caller
    children_of: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, spans: pa.Table) -> BaselineShape:
        svc = spans["service"].to_pylist()
        by_id = dict(zip(spans["span_id"].to_pylist(), svc, strict=True))
        roots: set[str] = set()
        edges: Counter[tuple[str, str]] = Counter()
        for s, p in zip(svc, spans["parent_id"].to_pylist(), strict=True):
            if not p:
                roots.add(s)
            elif p in by_id and by_id[p] != s:
                edges[(by_id[p], s)] += 1
        parent_of: dict[str, str] = {}
        for (caller, callee), _ in edges.most_common():
            parent_of.setdefault(callee, caller)
        children: dict[str, set[str]] = {}
        for caller, callee in edges:
            children.setdefault(caller, set()).add(callee)
        return cls(roots=roots, parent_of=parent_of, children_of=children)


class WindowVerdict(BaseModel):
    """What one window looked like."""

    traces: int
    anomalous: int
    votes: dict[str, int] = Field(default_factory=dict)  # "module|fault_type" -> traces
    anomalous_by_module: dict[str, int] = Field(default_factory=dict)  # root span module -> n
    trace_ids: list[str] = Field(default_factory=list)  # a sample of anomalous traces
    task_ids: list[str] = Field(default_factory=list)
    codes: dict[str, int] = Field(default_factory=dict)  # error codes seen in anomalous traces
    anomalies: list[tuple[str, str, int]] = Field(default_factory=list)  # (trace, module, start)
    # every trace judged (not held back): (trace, end ns, service it was triaged to, or None
    # for a normal trace), for sequential tests
    judged: list[tuple[str, int, str | None]] = Field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.anomalous / self.traces if self.traces else 0.0


def _svc(module_name: str) -> str:
    return module_name.split("::", 1)[0]


def _unbroken(baseline: pa.Table, config: TraceConfig) -> pa.Table:
    """The baseline without its traces that hold an orphan span.

    Why: fault-free traffic has no orphans, so an orphan at learning time is a parent span that
    was still on its way (exported late by its process). Learned as normal, a few such traces
    teach the model that a missing parent is normal: on a recorded span-drop run, 2 of 35
    baseline traces missing their LLMAdapter span hid 9 of 20 span-drop traces from the model,
    4 of 35 hid 19 of 20 — the span-drop a bench run once missed for 30 s."""
    forest, _ = reconstruct(baseline, config)
    if forest.n_traces == 0:
        return baseline
    broken = np.logical_or.reduceat(np.asarray(forest.orphan, dtype=bool), forest.offsets[:-1])
    if not broken.any() or broken.all():
        return baseline
    keep = pa.array([forest.trace_ids[t] for t in np.nonzero(~broken)[0]])
    return baseline.filter(pc.is_in(baseline["trace_id"], value_set=keep))


class LiveTraceDetector:
    """Fit once on fault-free spans, then judge windows quickly (see the module docstring)."""

    def __init__(
        self,
        baseline: pa.Table,
        config: TraceConfig | None = None,
        *,
        error_codes: Mapping[str, ErrorCodeMeaning] | None = None,
        late_grace_s: float = 0.5,
    ) -> None:
        self.config = config or TraceConfig(record_in_kb=False)
        baseline = _unbroken(baseline, self.config)
        forest, _ = reconstruct(baseline, self.config)
        self.model = NormalModel.fit(forest, self.config)
        self.shape = BaselineShape.of(baseline)
        self.error_codes = dict(error_codes or {})
        self.late_grace_s = late_grace_s
        # how often normal traffic itself looks anomalous, per service it is blamed on (the
        # sequential alarms' normal rates)
        self.normal_traces = forest.n_traces
        self.normal_blamed = self._held_out(baseline)
        self.normal_anomalous = sum(self.normal_blamed.values())

    def _held_out(self, baseline: pa.Table) -> Counter[str]:
        """Anomalous baseline traces per service they are blamed on, judged by a model that did
        not learn them (two folds, split in time): a model fitted on a few dozen traces calls
        few of its own traces anomalous but more fresh normal ones, and the alarms need the
        fresh rate."""
        first = baseline.group_by("trace_id").aggregate([("start_ns", "min")])
        blamed: Counter[str] = Counter()
        if first.num_rows < 4:
            return blamed
        mid = int(np.median(first["start_ns_min"].to_numpy()))
        early = pc.is_in(
            baseline["trace_id"],
            value_set=first.filter(pc.less(first["start_ns_min"], mid))["trace_id"],
        )
        halves = baseline.filter(early), baseline.filter(pc.invert(early))
        twin = copy.copy(self)
        for fit_on, judged in (halves, halves[::-1]):
            twin.model = NormalModel.fit(reconstruct(fit_on, self.config)[0], self.config)
            v = twin.judge(judged, now_ns=np.iinfo(np.int64).max)  # every span is in
            blamed.update(svc for _, _, svc in v.judged if svc is not None)
        return blamed

    def judge(self, spans: pa.Table, now_ns: int | None = None) -> WindowVerdict:
        """Score every trace of ``spans`` and name a (module, fault type) per anomalous one.

        A trace whose verdict hinges on a span that is missing (a caller timed out, the callee
        left no span) is held back until it ended ``late_grace_s`` before ``now_ns``: spans
        reach the store per process, and a late one must not pass for a hang."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if spans.num_rows == 0:
            return WindowVerdict(traces=0, anomalous=0)
        forest, _ = reconstruct(spans, self.config)
        batch = self.model.score(forest)
        f = forest
        table = f.table
        services = table["service"].to_pylist()
        codes = error_codes(table)
        attrs = table["attributes"].to_pylist()
        votes: Counter[str] = Counter()
        by_module: Counter[str] = Counter()
        seen_codes: Counter[str] = Counter()
        sample: list[str] = []
        tasks: list[str] = []
        found: list[tuple[str, str, int]] = []
        pending: set[int] = set()  # anomalous traces whose evidence may still be in flight
        blamed: dict[int, str] = {}  # anomalous trace -> the service its triage names
        failing: dict[str, set[str]] = {}  # service -> codes its own spans carry in the window
        for svc, code in zip(services, codes, strict=True):
            if code:
                failing.setdefault(svc, set()).add(code)
        lost = {  # services starting traces in this window that never do in the baseline
            services[i]
            for i in range(len(services))
            if f.parent[i] < 0 and not f.orphan[i] and services[i] not in self.shape.roots
        }
        # broken structure is anomalous by definition, whatever the learned scores say: normal
        # traffic has no orphans and no trace started by a module that never starts one
        broken = np.asarray(f.orphan, dtype=bool) | np.array(
            [services[i] in lost and f.parent[i] < 0 for i in range(len(services))], dtype=bool
        )
        flagged = np.asarray(batch.anomalous, dtype=bool) | np.logical_or.reduceat(
            broken, f.offsets[:-1]
        )
        anomalous = np.nonzero(flagged)[0]
        for t in anomalous:
            lo, hi = int(f.offsets[t]), int(f.offsets[t + 1])
            root, reason = explain(batch, int(t))
            ended = float(np.max(f.start_ns[lo:hi] + f.duration_ns[lo:hi]))
            verdict = self._triage(
                f,
                root,
                reason,
                lo,
                hi,
                services,
                codes,
                failing,
                lost,
                fresh=ended > now_ns - self.late_grace_s * 1e9,
            )
            if verdict is None:
                pending.add(int(t))
                continue
            module, fault = verdict
            blamed[int(t)] = module
            by_module[_svc(f.module_names[f.module[root]])] += 1
            for i in range(lo, hi):
                if codes[i]:
                    seen_codes[codes[i]] += 1
            votes[f"{module}|{fault}"] += 1
            found.append((f.trace_ids[t], module, int(f.start_ns[lo])))
            if len(sample) < 20:
                sample.append(f.trace_ids[t])
                task = json.loads(attrs[lo]).get("task_id") if attrs[lo] else None
                if task:
                    tasks.append(str(task))
        ends = np.maximum.reduceat(f.start_ns + f.duration_ns, f.offsets[:-1])
        judged = [
            (f.trace_ids[t], int(ends[t]), blamed.get(t))
            for t in range(f.n_traces)
            if t not in pending
        ]
        return WindowVerdict(
            traces=f.n_traces - len(pending),
            anomalous=len(anomalous) - len(pending),
            votes=dict(votes),
            anomalous_by_module=dict(by_module),
            trace_ids=sample,
            task_ids=tasks,
            codes=dict(seen_codes),
            anomalies=found,
            judged=judged,
        )

    def _triage(
        self,
        f: TraceForest,
        root: int,
        reason: Reason,
        lo: int,
        hi: int,
        services: list[str],
        codes: list[str | None],
        failing: dict[str, set[str]],
        lost: set[str],
        fresh: bool,
    ) -> tuple[str, str] | None:
        """(module, fault type) of one anomalous trace (rules in the module docstring)."""
        shape = self.shape
        idx = range(lo, hi)
        # 1. a service starting traces that never does in the baseline lost its context
        for i in idx:
            if f.parent[i] < 0 and not f.orphan[i] and services[i] not in shape.roots:
                return services[i], "context_loss"
        # 1b. the other half of a context loss: a trace missing a callee that starts traces of
        #     its own elsewhere in the window lost that callee to the same fault
        in_trace = {services[i] for i in idx}
        for svc in sorted(in_trace):
            for callee in sorted(shape.children_of.get(svc, set()) - in_trace):
                if callee in lost:
                    return callee, "context_loss"
        # 2. orphans: their usual parent dropped its spans
        for i in idx:
            if f.orphan[i]:  # a dropped parent and a late one look alike until it is overdue
                return (
                    None if fresh else (shape.parent_of.get(services[i], services[i]), "span_drop")
                )
        root_svc = services[root]
        # 3. hangs: a caller timing out on a callee whose spans are absent (still hung, so not
        #    exported) blames the callee, unless the callee's spans elsewhere in the window
        #    answer with that very code (then it fails fast, and this trace's callee span is
        #    merely late); a hung span without a code of its own is the hang
        own = codes[root]
        if own in TIMEOUT_CODES:
            present = {services[i] for i in idx if f.parent[i] == root}
            absent = shape.children_of.get(root_svc, set()) - present
            if absent:
                callee = sorted(absent)[0]
                if own in failing.get(callee, ()):  # the callee answers with the timeout
                    meaning = self.error_codes.get(own)
                    return callee, meaning.fault if meaning else "timeout"
                if fresh:  # its span may still be on the way: judge this trace later
                    return None
                return callee, "inference_hang" if own == "MODEL_TIMEOUT" else "hang"
        missing = any(shape.children_of.get(svc, set()) - in_trace for svc in in_trace)
        if missing and fresh and not any(f.orphan[i] for i in idx):
            return None  # the callee's spans, or the trace it started, may still be in flight
        if reason == Reason.HANG and own is None:  # a span that answered an error is not hung
            callers = {codes[i] for i in idx if codes[i] in TIMEOUT_CODES}
            return root_svc, "inference_hang" if "MODEL_TIMEOUT" in callers else "hang"
        code = own
        # 4. the origin span's error code
        if code in self.error_codes:
            fault, blame = self.error_codes[code].fault, self.error_codes[code].blame
            if blame == "parent" and f.parent[root] >= 0:
                return services[int(f.parent[root])], fault
            if blame == "callee":
                kids = [i for i in idx if f.parent[i] == root and codes[i]]
                if kids:
                    return services[kids[-1]], fault
            return root_svc, fault
        for i in idx:  # a trace whose origin carries no code: the most specific code inside
            meaning = self.error_codes.get(codes[i] or "")
            if meaning is not None:
                return services[i], meaning.fault
        return root_svc, {
            Reason.LATENCY: "latency",
            Reason.MISSING: "missing_downstream",
            Reason.FORKED: "context_loss",
        }.get(reason, "error")


def complete_traces(spans: pa.Table, ended_before_ns: int) -> pa.Table:
    """Spans of the traces whose root span ended before ``ended_before_ns``.

    Why: spans are exported when they end, children first and from several processes, so the
    newest traces are always partial; judged early they would look like dropped spans. A trace
    counts once its root has ended and every process had time to flush.
    """
    if spans.num_rows == 0:
        return spans
    is_root = pc.or_kleene(pc.is_null(spans["parent_id"]), pc.equal(spans["parent_id"], ""))
    done = pc.and_(is_root, pc.less_equal(spans["end_ns"], ended_before_ns))
    ids = pc.unique(pc.filter(spans["trace_id"], pc.fill_null(done, False)))
    return spans.filter(pc.is_in(spans["trace_id"], value_set=ids))
