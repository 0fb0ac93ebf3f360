"""The OTLP JSON span file round-trips through tamo's own ``otlp-json`` parser."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from testbed.otlp_json import spans_to_otlp_json
from tools.telemetry.ingest import parse_text

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
values = st.one_of(
    st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    service=names,
    span_name=names,
    attributes=st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=6),
    error=st.booleans(),
)
def test_round_trip_through_tamo_parser(
    service: str, span_name: str, attributes: dict, error: bool
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("root") as root,
        tracer.start_as_current_span(span_name, attributes=attributes) as child,
    ):
        if error:
            child.set_status(Status(StatusCode.ERROR, "boom"))
    spans = memory.get_finished_spans()
    text = json.dumps(spans_to_otlp_json(spans))
    table = parse_text(text, "spans.jsonl", "otlp-json").spans.to_pylist()
    by_name = {row["operation"]: row for row in table}
    assert len(table) == 2 and {r["service"] for r in table} == {service}
    parsed = by_name[span_name] if span_name != "root" else next(r for r in table if r["parent_id"])
    assert parsed["trace_id"] == format(root.get_span_context().trace_id, "032x")
    assert parsed["span_id"] == format(child.get_span_context().span_id, "016x")
    assert parsed["parent_id"] == format(root.get_span_context().span_id, "016x")
    assert parsed["status"] == ("error" if error else "unset")
    parsed_attrs = json.loads(parsed["attributes"] or "{}")
    for key, value in attributes.items():
        assert parsed_attrs[key] == value
    provider.shutdown()
