"""Drain-style template miner: masking, merging, persisted state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.core.errors import InputError
from tools.traces.log_templates import TemplateMiner, mask


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
