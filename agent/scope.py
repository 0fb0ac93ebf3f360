"""Building the investigation context from what a front was given: a dataset case or a window.

Why shared: ``tamo diagnose``, ``tamo chat``, ``tamo slack`` and the benchmarks turn the same
arguments (a labelled case, or start/end/services against the configured sources) into a
:class:`ToolContext` and an :class:`Incident` the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tools.core.errors import ConfigError, DatasetError
from tools.core.settings import Settings
from tools.telemetry.datasets import get_adapter
from tools.telemetry.model import Incident, TimeWindow
from tools.toolbox.context import ToolContext

_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise ConfigError(f"bad duration {text!r} (use e.g. 90s, 15m, 2h, 1d)", source="--last")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def case_context(dataset: str, root: Path, case_id: str, settings: Settings) -> ToolContext:
    adapter = get_adapter(dataset)
    cases = adapter.cases(root)
    found = next((c for c in cases if c.case_id == case_id), None)
    if found is None:
        sample = ", ".join(c.case_id for c in cases[:3])
        raise DatasetError(f"no case {case_id!r} in {dataset} (e.g. {sample})", source=str(root))
    return ToolContext.from_case(adapter.load_case(root, found), settings)


def _utc(t: datetime) -> datetime:
    """Naive times on the command line are UTC (incident timelines are kept in UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def window_incident(
    start: datetime | None,
    end: datetime | None,
    last: str,
    services: list[str],
    question: str | None,
    trace_id: str | None,
) -> Incident:
    end = _utc(end) if end else datetime.now(UTC)
    start = _utc(start) if start else end - parse_duration(last)
    return Incident(
        window=TimeWindow(start=start, end=end),
        services=services,
        question=question,
        trace_id=trace_id,
    )
