"""The declared service graph: parsing, one-line errors, the store, and the merge."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.telemetry.store import TelemetryStore
from tools.telemetry.topology import (
    Topology,
    looks_like_topology,
    merged_call_graph,
    parse_topology,
    read_topology,
)


def test_edges_are_parsed_deduplicated_and_cycles_accepted() -> None:
    doc = {"edges": [["web", "cart"], ["cart", "db"], ["web", "cart"], ["db", "cart"]]}
    topo = parse_topology(json.dumps(doc), "t.json")
    assert topo.edges == [("web", "cart"), ("cart", "db"), ("db", "cart")]
    assert topo.cycles() == 1
    assert "1 call cycle(s)" in topo.warnings(None)[0]


def test_unknown_services_are_a_counted_warning() -> None:
    topo = Topology(edges=[("web", "cart"), ("cart", "ghost")])
    (warning,) = topo.warnings({"web", "cart"})
    assert warning == "1 service(s) not in the stored telemetry: ghost"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('{"edges": [["a", "b"],', "t.json:1:", "not JSON"),
        ('{"nodes": []}', "t.json", "expected an object"),
        ('{"edges": {"a": "b"}}', "t.json", "must be a list"),
        ('{"edges": [["a", "b"], ["a"]]}', "t.json: edges[1]", "expected [caller, callee]"),
        ('{"edges": [["a", ""]]}', "t.json: edges[0]", "two names"),
        ('{"edges": [["a", "a"]]}', "t.json: edges[0]", "calls itself"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_entry(text: str, where: str, what: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_topology(text, "t.json")
    message = str(exc.value)
    assert where in message and what in message and "\n" not in message


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_fails_with_an_input_error(text: str) -> None:
    try:
        topo = parse_topology(text, "t.json")
    except InputError as exc:
        assert "t.json" in str(exc)
    else:
        assert all(a != b for a, b in topo.edges)


def test_store_keeps_one_topology_and_reingest_replaces(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with TelemetryStore(path) as store:
        assert store.topology() is None
        store.set_topology(Topology(edges=[("a", "b")], source="one.json"))
        store.set_topology(Topology(edges=[("a", "c"), ("c", "d")], source="two.json"))
    with TelemetryStore(path, read_only=True) as store:
        topo = store.topology()
    assert topo is not None and topo.edges == [("a", "c"), ("c", "d")]
    assert topo.source == "two.json"


def test_merge_keeps_traced_edges_and_walks_through_unseen_services() -> None:
    traced = nx.DiGraph()
    traced.add_edge("web", "cart", calls=10)
    declared = Topology(edges=[("web", "cart"), ("cart", "proxy"), ("proxy", "db")])
    graph = merged_call_graph(traced, declared, ["web", "cart", "db"])
    assert graph.edges["web", "cart"] == {"calls": 10, "declared": True}
    assert graph.has_edge("cart", "db")  # through the unexported proxy
    assert "proxy" not in graph
    assert merged_call_graph(traced, None, ["web", "x"]).number_of_edges() == 1


def test_detection_and_reading(tmp_path: Path) -> None:
    assert looks_like_topology('  {\n "edges": [')
    assert not looks_like_topology('{"resourceSpans": []}')
    f = tmp_path / "topology.json"
    f.write_text('{"edges": [["a", "b"]]}')
    assert read_topology(f).source == str(f)
    with pytest.raises(InputError, match="cannot read"):
        read_topology(tmp_path / "missing.json")
