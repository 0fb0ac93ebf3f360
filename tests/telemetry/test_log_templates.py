"""Drain-style template miner: masking, merging, persisted state."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.telemetry import log_templates
from tools.telemetry.log_templates import MAX_LINE_CHARS, TemplateMiner, mask, tokenize


def test_masks_variables() -> None:
    line = (
        "conn 10.1.2.3:8080 id=deadbeef01 req 550e8400-e29b-41d4-a716-446655440000 took 12.5ms 0x1F"
    )
    m = mask(line)
    assert "<IP>" in m and "<HEX>" in m and "<UUID>" in m and "<NUM>" in m
    assert "10.1.2.3" not in m and "12.5" not in m
    assert mask("cannot write state of load-069ece-00001 step 0") == (
        "cannot write state of <ID> step <NUM>"
    )
    assert mask("model llm-primary-v4.1.0 ok") == "model llm-primary-v4.1.0 ok"


def test_similar_lines_share_a_template_and_differences_become_wildcards() -> None:
    miner = TemplateMiner()
    a = miner.add("WebhookDeliver attempt failed for tenant acme status 503")
    b = miner.add("WebhookDeliver attempt failed for tenant globex status 503")
    c = miner.add("LLMAdapter model timeout after 10000 ms")
    assert a.template_id == b.template_id != c.template_id
    assert b.template == "WebhookDeliver attempt failed for tenant <*> status <NUM>"
    assert b.count == 2
    assert (
        miner.match("WebhookDeliver attempt failed for tenant initech status 500").template_id
        == a.template_id
    )
    assert miner.match("something entirely different here") is None


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "drain.json"
    miner = TemplateMiner(state_path=state)
    first = miner.add("user 42 logged in from 10.0.0.1")
    miner.add("cache miss for key ctx-12")
    miner.save()
    again = TemplateMiner(state_path=state)
    assert [t.model_dump() for t in again.templates()] == [
        t.model_dump() for t in miner.templates()
    ]
    assert again.add("user 7 logged in from 10.0.0.9").template_id == first.template_id
    assert again.add("a brand new line").template_id == 2


def test_corrupt_state_is_an_input_error(tmp_path: Path) -> None:
    state = tmp_path / "drain.json"
    state.write_text("{not json")
    with pytest.raises(InputError, match=r"drain\.json"):
        TemplateMiner(state_path=state)


def test_statements_at_different_code_locations_never_share_a_template() -> None:
    miner = TemplateMiner()
    a = miner.add("16:42:09 INFO  t.c.TravelServiceImpl#366 [calculate time: 475]")
    b = miner.add("16:42:10 INFO  t.c.TravelServiceImpl#372 [calculate time: 175]")
    again = miner.add("16:43:00 INFO  t.c.TravelServiceImpl#366 [calculate time: 12]")
    assert a.template_id == again.template_id != b.template_id
    assert "t.c.TravelServiceImpl#366" in again.template
    assert miner.match("16:44:00 INFO  t.c.TravelServiceImpl#999 [calculate time: 1]") is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "user 42 logged in from 10.0.0.1",
                "user 7 logged in from 10.0.0.9",
                "cache miss for key ctx-12",
                "c.s.Impl#10 [get][took 3 ms]",
                "c.s.Impl#20 [get][took 4 ms]",
                "",
                "x" * 300,
                " " * 100 + "y" * 200,
                "é" * 239 + " 12 tail",
                "a\x1cb\u3000c\x00d\x0b7 e=1;f:2",
            ]
        )
        | st.text(max_size=40),
        max_size=30,
    )
)
def test_a_column_is_mined_as_if_streamed_line_by_line(lines: list[str]) -> None:
    streamed = TemplateMiner()
    one_by_one = [streamed.add(line).template_id for line in lines]
    column = TemplateMiner()
    assert column.template_ids(pa.array(lines, pa.string())).tolist() == one_by_one
    assert [t.model_dump() for t in column.templates()] == [
        t.model_dump() for t in streamed.templates()
    ]


def test_only_the_start_of_a_long_line_is_read() -> None:
    head = "payload dump follows " + "k " * 200
    assert tokenize(head + "A") == tokenize(head + "B")
    assert len(" ".join(tokenize(head))) <= MAX_LINE_CHARS


_WORDS = st.sampled_from(
    ["10.0.0.1:80", "ctx-12", "0x1F", "deadbeef01", "12.5ms", "Impl#366", "-3", "v4.1.0", "a.b"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS | st.text(max_size=12), max_size=12).map(" ".join) | st.text())
def test_masking_word_by_word_equals_masking_the_whole_line(line: str) -> None:
    whole = line
    for pattern, token in log_templates._MASKS:
        whole = pattern.sub(token, whole)
    assert mask(line) == whole
