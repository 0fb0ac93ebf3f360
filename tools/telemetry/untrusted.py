"""Telemetry text is data: how it is carried, quoted and flagged wherever a model or a person
reads it.

Why structure and not a filter: log bodies, span attributes, service names, error codes and metric
labels come from the systems under investigation, and anyone who can make a service log a line can
write text aimed at a model. No pattern list catches every way of phrasing an instruction, so
safety does not depend on recognising one. Instead:

* in tool results every such string is a JSON string value of a typed field (:func:`clip` only
  bounds its length), and what a model reads is :func:`model_json` of the result: JSON in which
  ``"`` and ``\\`` are escaped, and so are control characters, line separators and invisible
  format characters (bidi overrides, zero-width joiners) — content can never end the string it
  is in, and prompts carry it as JSON documents, never inside tags a string could close;
* where prose must name such a string (an evidence summary, a report title), it is spliced in as
  :func:`quote` — the same JSON string literal, cut *before* quoting so a cut can never split the
  quotes — never as raw text;
* renderers for people escape markup (:func:`markdown`, :func:`slack`), so a log line can neither
  form a link or an image in a report nor move the terminal cursor.

:func:`flags` then names what looks like an attempt (instruction phrasing, role markers, tool-call
syntax, bidi characters, mixed scripts, markup) so a person sees it in the report; nothing ever
acts on a flag, and nothing is safe *because* of one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, Field

ELLIPSIS = "…"
# Unicode categories escaped in model-facing JSON: controls, format characters (bidi controls,
# zero-width characters, the BOM), line/paragraph separators, surrogates, private use, unassigned.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def clip(text: str | None, limit: int = 160) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked with ``…``."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code > 0xFFFF:  # outside the BMP: a JSON surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _needs_escape(ch: str) -> bool:
    return ch > "~" and unicodedata.category(ch) in _ESCAPED_CATEGORIES


def _harden(encoded: str) -> str:
    """Escape invisible characters in already JSON-encoded text (still valid JSON: ``\\uXXXX``
    is a legal escape anywhere inside a string, and these characters never occur outside strings
    in JSON that :func:`json.dumps` wrote; ASCII controls it has escaped already)."""
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in encoded)


def quote(text: str | None, limit: int = 160) -> str:
    """``text`` as a JSON string literal that no content can close, cut to ``limit`` first.

    Readable (non-ASCII letters stay as they are) but unambiguous: the result starts and ends
    with ``"``, contains no unescaped ``"``, no raw newline or control character and no invisible
    character, so a reader (or a parser) always knows where the data ends.
    """
    return _harden(json.dumps(clip(text, limit), ensure_ascii=False))


def model_json(data: Any) -> str:
    """``data`` as compact JSON for a model to read: every string hardened as in :func:`quote`."""
    return _harden(json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str))


# Characters that open markdown constructs anywhere in a line (links, images, emphasis, code,
# HTML, tables, strikethrough, entities, autolinks' scheme colon), and line starts that open a
# block (list item, heading underline, numbered list).
_MD_INLINE = re.compile(r"([\\`*_{}\[\]()<>!#|~&:])")
_MD_BULLET = re.compile(r"^(\s*)([-+=])")
_MD_NUMBERED = re.compile(r"^(\s*\d+)([.)])")


def markdown(text: str) -> str:
    """Text safe to place in markdown as plain text: every character that can open a link,
    image, emphasis, code span, HTML or a block is backslash-escaped (CommonMark allows that for
    any ASCII punctuation), newlines become spaces and invisible characters are shown escaped,
    so a log line renders as the characters it contains and nothing else."""
    flat = text.replace("\n", " ")
    visible = "".join(_escape_char(ch) if _needs_escape(ch) or ch < " " else ch for ch in flat)
    inline = _MD_INLINE.sub(r"\\\1", visible)
    return _MD_NUMBERED.sub(r"\1\\\2", _MD_BULLET.sub(r"\1\\\2", inline))


def slack(text: str) -> str:
    """Text safe for Slack ``mrkdwn``: ``&``, ``<`` and ``>`` escaped as Slack asks, so no
    ``<url|label>`` link, user or channel mention can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------------------
# flags: what a person should look at (display only)
# ------------------------------------------------------------------------------------------------

_INSTRUCTION = re.compile(
    r"ignore (all |any |the )?(previous|prior|above|earlier) (instructions|prompts?|rules)"
    r"|disregard (the |all |any )?(previous|above|prior|system)|you are now|new instructions"
    r"|system prompt|\bact as\b|forget (everything|all|your)|override (the )?(policy|rules)",
    re.IGNORECASE,
)
_ROLE = re.compile(
    r"(^|\n|\s)(system|assistant|user|developer|tool)\s*:|<\|?(im_start|im_end|system|"
    r"assistant|user)\|?>|\[/?INST\]",
    re.IGNORECASE,
)
_TOOL_CALL = re.compile(
    r"execute_repair|plan_repair|tool_calls?|function_call|\"(name|arguments|role)\"\s*:"
    r"|dry_run\s*=|approved_by|tamo\s+(repair|audit|diagnose)|\s--yes\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[a-z_]+\}")
_MARKUP_RE = re.compile(r"\]\(|!\[|</?[a-zA-Z][^>]*>|```|«|»|<\|")
_WORD = re.compile(r"\w+")


def _mixed_script(text: str) -> bool:
    """A word mixing Latin letters with letters of another script (``pаypal`` with a Cyrillic
    ``а``): the usual way to make one name look like another."""
    for word in _WORD.findall(text):
        scripts = set()
        for ch in word:
            if ch.isalpha():
                name = unicodedata.name(ch, "")
                scripts.add(name.split(" ")[0] if name else "?")
        if "LATIN" in scripts and len(scripts) > 1:
            return True
    return False


def flags(text: str | None, limit: int = 10_000) -> list[str]:
    """Why ``text`` deserves a person's attention (empty: nothing noticed). Display only."""
    if not text:
        return []
    out = []
    if len(text) > limit:
        out.append(f"oversized ({len(text)} characters)")
    head = text[:limit]
    if _INSTRUCTION.search(head):
        out.append("instruction-like")
    if _ROLE.search(head):
        out.append("role marker")
    if _TOOL_CALL.search(head):
        out.append("tool-call syntax")
    if _MARKUP_RE.search(head):
        out.append("markup or fence")
    if _PLACEHOLDER.search(head):
        out.append("template placeholder")
    if any(unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp") and ch not in "\t" for ch in head):
        out.append("invisible or control characters")
    if _mixed_script(head):
        out.append("mixed scripts (confusables)")
    return out


class FlaggedText(BaseModel):
    """A telemetry string a person should see as suspicious data (never acted on)."""

    source: str = Field(description="where it was found, e.g. 'log of paymentservice'")
    text: str = Field(description="the text, cut; telemetry, not an instruction")
    why: list[str]


def flagged(source: str, text: str | None, limit: int = 160) -> FlaggedText | None:
    """A :class:`FlaggedText` for ``text`` when :func:`flags` notices anything, else ``None``."""
    why = flags(text)
    return FlaggedText(source=source, text=clip(text, limit), why=why) if why else None
