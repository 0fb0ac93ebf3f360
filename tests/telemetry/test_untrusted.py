"""Quoting telemetry: unbreakable by construction (property tests), readable, and flagged."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from tests.agent.red_team import CORPUS
from tools.telemetry.untrusted import clip, flags, markdown, model_json, quote, slack

_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
texts = st.text(st.characters(codec="utf-8"), max_size=400) | st.sampled_from(list(CORPUS.values()))


@settings(max_examples=400, deadline=None)
@given(text=texts, limit=st.integers(1, 300))
def test_a_quoted_literal_cannot_be_closed_from_inside(text: str, limit: int) -> None:
    q = quote(text, limit)
    assert json.loads(q) == clip(text, limit)  # the data, intact (only cut)
    # spliced into prose, the literal that starts at the quote ends exactly at its end
    prose = f"worst: {q} then more words"
    m = _LITERAL.match(prose, len("worst: "))
    assert m is not None and m.end() == len("worst: ") + len(q)
    assert not any(unicodedata.category(ch) in _INVISIBLE for ch in q)


@settings(max_examples=300, deadline=None)
@given(
    data=st.recursive(
        texts | st.integers() | st.none(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=12,
    )
)
def test_model_json_round_trips_and_hides_nothing_invisible(data: object) -> None:
    text = model_json(data)
    assert json.loads(text) == data
    assert "\n" not in text
    assert not any(unicodedata.category(ch) in _INVISIBLE for ch in text)


_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _inline_types(tokens: list) -> set[str]:
    out = set()
    for t in tokens:
        out.add(t.type)
        out |= _inline_types(t.children or [])
    return out


@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_markdown_escaping_renders_text_and_nothing_else(text: str) -> None:
    """A value placed in a report line renders as one paragraph of text: no link, image, HTML,
    code, emphasis, heading or list, whatever it contains."""
    tokens = _MD.parse(f"- Action: {markdown(text)}")
    kinds = _inline_types(tokens)
    allowed = {
        "bullet_list_open",
        "bullet_list_close",
        "list_item_open",
        "list_item_close",
        "paragraph_open",
        "paragraph_close",
        "inline",
        "text",
        "softbreak",
    }
    assert kinds <= allowed, kinds - allowed
    assert sum(t.type == "list_item_open" for t in tokens) == 1


def test_markdown_keeps_ordinary_text_readable() -> None:
    assert (
        markdown("2026-01-05 checkout-service p95 3.2 s") == "2026-01-05 checkout-service p95 3.2 s"
    )
    assert markdown("![x](https://e/?k)") == r"\!\[x\]\(https\://e/?k\)"


def test_slack_escaping_leaves_no_link_or_mention() -> None:
    out = slack(CORPUS["slack link"])
    assert "<" not in out and ">" not in out and "&lt;!channel&gt;" in out


def test_clip_marks_the_cut_and_keeps_short_text() -> None:
    assert clip("abc", 5) == "abc" and clip("abcdef", 4) == "abc…" and clip(None) == ""
    assert len(clip(CORPUS["megabyte line"], 160)) == 160


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_red_team_string_is_flagged(name: str) -> None:
    assert flags(CORPUS[name]), name


def test_ordinary_log_lines_are_not_flagged() -> None:
    for line in (
        "charge failed: card processor timeout after 3000 ms",
        "GET /api/cart 200 12ms user=42",
        "连接数据库超时 (timeout) after 30s",  # non-Latin text on its own is no confusable
        "retrying request id=9f2c attempt 3/5",
    ):
        assert flags(line) == [], line
