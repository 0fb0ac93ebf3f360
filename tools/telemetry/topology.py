"""A declared service graph (``topology.json``): who calls whom, for systems without traces.

Why declared: a metrics-only system has no spans to derive the call graph from, yet localization
needs it (a slow callee makes its callers slow, so blame walks down the calls). The SRE writes
``{"edges": [["caller", "callee"], ...]}`` once; it is stored in the embedded store and merged
with the traced call graph wherever that is used (a traced edge keeps its call counts, a declared
one adds ``declared=True``).

Decisions on odd input:
* **cycles are accepted**: real systems have them (callbacks, A -> B -> A through a queue), and
  the random walk of localization does not need a DAG. The count is reported as a warning.
* **unknown services** (never seen in the stored telemetry) are accepted and counted as a warning
  at ingest, since the topology may be ingested before the telemetry; alignment walks *through*
  them (caller -> unknown -> callee becomes caller -> callee) so a missing exporter does not cut
  the graph.
* a self-call, an entry that is not two non-empty names or bad JSON is a one-line error naming
  the file and the entry (``topology.json: edges[3]: ...``); nothing is stored then.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
from pydantic import BaseModel, Field

from tools.core.errors import InputError

MAX_BYTES = 32 * 1024 * 1024


class Topology(BaseModel):
    """Caller -> callee edges (deduplicated, in file order) and where they came from."""

    edges: list[tuple[str, str]] = Field(default_factory=list)
    source: str = "declared"

    @property
    def services(self) -> set[str]:
        return {s for e in self.edges for s in e}

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_edges_from(self.edges, declared=True)
        return g

    def cycles(self) -> int:
        """Strongly connected groups of more than one service (each holds a cycle)."""
        return sum(1 for c in nx.strongly_connected_components(self.graph()) if len(c) > 1)

    def warnings(self, known_services: set[str] | None) -> list[str]:
        out = []
        if n := self.cycles():
            out.append(f"{n} call cycle(s) (accepted: the walk does not need a DAG)")
        if known_services:
            unknown = sorted(self.services - known_services)
            if unknown:
                shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
                out.append(f"{len(unknown)} service(s) not in the stored telemetry: {shown}")
        return out


def edges_of(entries: object, source: str) -> Topology:
    """Validate the ``edges`` value (from a file or a tool call) into a :class:`Topology`."""
    if not isinstance(entries, list):
        raise InputError("'edges' must be a list of [caller, callee] pairs", path=source)
    seen: dict[tuple[str, str], None] = {}
    for i, entry in enumerate(entries):
        where = f"{source}: edges[{i}]"
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 2
            or not all(isinstance(s, str) and s.strip() for s in entry)
        ):
            raise InputError(
                f"expected [caller, callee] (two names), got {entry!r:.80}", path=where
            )
        caller, callee = entry[0].strip(), entry[1].strip()
        if caller == callee:
            raise InputError(
                f"{caller!r} calls itself (a service is not its own callee)", path=where
            )
        seen[(caller, callee)] = None
    return Topology(edges=list(seen), source=source)


def parse_topology(text: str, source: str) -> Topology:
    """``{"edges": [[caller, callee], ...]}`` text -> :class:`Topology` (one-line errors)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not JSON: {exc.msg}", path=f"{source}:{exc.lineno}:{exc.colno}"
        ) from None
    if not isinstance(doc, dict) or "edges" not in doc:
        raise InputError('expected an object {"edges": [[caller, callee], ...]}', path=source)
    return edges_of(doc["edges"], source)


def read_topology(path: Path) -> Topology:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"larger than {MAX_BYTES // 2**20} MiB", path=str(path))
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=str(path)) from None
    return parse_topology(text, str(path))


def looks_like_topology(head: str) -> bool:
    """A JSON object whose first key is ``edges`` (how ``tamo ingest`` tells it from telemetry)."""
    return head.lstrip().startswith("{") and head.lstrip()[1:].lstrip().startswith('"edges"')


def merged_call_graph(
    traced: nx.DiGraph, declared: Topology | None, entities: list[str]
) -> nx.DiGraph:
    """The traced call graph plus the declared edges between ``entities``.

    A declared path through services without telemetry is contracted (caller -> ... -> callee
    becomes caller -> callee), so an unexported hop does not disconnect the graph.
    """
    graph = traced.copy()
    graph.add_nodes_from(entities)
    if declared is None or not declared.edges:
        return graph
    known = set(entities)
    full = declared.graph()
    for a in known & set(full):
        for b in _reachable_through_unknown(full, a, known):
            if graph.has_edge(a, b):
                graph.edges[a, b]["declared"] = True
            else:
                graph.add_edge(a, b, declared=True, calls=0)
    return graph


def _reachable_through_unknown(g: nx.DiGraph, start: str, known: set[str]) -> set[str]:
    out: set[str] = set()
    stack, seen = list(g.successors(start)), {start}
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in known:
            out.add(n)
        else:
            stack.extend(g.successors(n))
    return out
