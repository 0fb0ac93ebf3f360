"""The LLM's choice of scope: which services and which part of the window the learned tools study.

Why a line of the model's answer, checked here: the model reads the evidence and may narrow the
investigation (a flood of unrelated errors elsewhere, an onset later than the alert window), but
what it asks for is validated against what the window holds — services must be ones the window
has, times must lie inside the window — so a wrong or injected choice is refused with the reason,
never half-applied. Without an LLM the deterministic planner keeps the caller's scope.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tools.telemetry.model import Incident, TimeWindow

MIN_WINDOW_S = 30.0
# The evidence loop's last answer may carry the model's scope on one line:
#   SCOPE: payment, checkout | 2026-01-05T10:12:00Z - 2026-01-05T10:15:00Z
# (the time part is optional). A line, not a tool: a tool schema would be paid on every call.
_LINE = re.compile(r"^\s*SCOPE:\s*(?P<services>[^|\n]*?)\s*(?:\|\s*(?P<times>[^\n]+))?$", re.M)


class ScopeChoice(BaseModel):
    services: list[str] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None


def parse_scope_line(text: str) -> dict[str, Any] | None:
    """The ``SCOPE:`` line of the model's answer as arguments, or ``None`` without one."""
    found = list(_LINE.finditer(text or ""))
    if not found:
        return None
    m = found[-1]
    names = [n.strip().strip("`'\"") for n in m.group("services").split(",")]
    args: dict[str, Any] = {"services": [n for n in names if n and n.lower() != "all"]}
    if m.group("times"):
        parts = [p.strip() for p in re.split(r"\s+-\s+|\s+to\s+", m.group("times").strip())]
        if len(parts) == 2:
            args["start"], args["end"] = parts
        else:
            args["start"] = "unreadable time range"  # refused with the reason below
    return args


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def apply_scope(
    incident: Incident, args: dict[str, Any], known_services: list[str]
) -> tuple[Incident | None, str]:
    """(the narrowed incident, what was set) or (``None``, why it was refused)."""
    try:
        choice = ScopeChoice.model_validate(args)
    except ValidationError as exc:
        return None, f"refused: {exc.errors()[0]['msg']}"
    unknown = sorted(set(choice.services) - set(known_services))
    if unknown:
        return None, f"refused: no such services in the window: {', '.join(unknown)}"
    w = incident.window
    start = _utc(choice.start) if choice.start else w.start
    end = _utc(choice.end) if choice.end else w.end
    if start < w.start or end > w.end or (end - start).total_seconds() < MIN_WINDOW_S:
        return None, (
            f"refused: the time must lie inside {w.start:%H:%M:%S}-{w.end:%H:%M:%S} UTC and "
            f"span at least {MIN_WINDOW_S:g} s"
        )
    narrowed = incident.model_copy(
        update={
            "services": choice.services or incident.services,
            "window": TimeWindow(start=start, end=end),
        }
    )
    said = (
        f"scope set: {', '.join(narrowed.services) or 'all services'}, "
        f"{start:%H:%M:%S}-{end:%H:%M:%S} UTC"
    )
    return narrowed, said
