"""The one severity scale: OpenTelemetry's level numbers and every spelling sources use for them.

Why one scale: the T1 log branch counted "error-level" lines, the fingerprints counted
"warning-or-worse" lines and ``search_logs`` filtered "at least X", each with its own list of
level names, so a ``WARNING`` or ``SEVERE`` line counted in one and not the other. Stored log
rows carry the upper-case level name their source wrote (``WARN``, ``WARNING``, ``SEVERE``, ...);
this module maps each spelling onto the OpenTelemetry ``SeverityNumber`` ranges and answers
"which spellings are at least this level" for columnar filters.
"""

from __future__ import annotations

from enum import IntEnum


class Severity(IntEnum):
    """A log level; the value is the lowest OpenTelemetry ``SeverityNumber`` of its range."""

    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21


# Spellings other logging frameworks write for the same levels (Logback/Log4j, java.util.logging,
# Python's logging, syslog); stored rows keep the source's spelling, upper-cased.
_SPELLINGS: dict[str, Severity] = {
    **{s.name: s for s in Severity},
    "NOTICE": Severity.INFO,
    "WARNING": Severity.WARN,
    "SEVERE": Severity.ERROR,
    "CRITICAL": Severity.FATAL,
    "ALERT": Severity.FATAL,
    "EMERGENCY": Severity.FATAL,
}


def severity_of(name: str | None) -> Severity | None:
    """The level a spelling names (case-insensitive), ``None`` for an unknown or missing one."""
    return _SPELLINGS.get(name.strip().upper()) if name else None


def severity_from_number(number: int) -> Severity | None:
    """The level of an OpenTelemetry ``SeverityNumber`` (1-24); ``None`` below 1."""
    return next((s for s in reversed(Severity) if number >= s.value), None)


def spellings_at_least(level: Severity) -> list[str]:
    """Every upper-case spelling of ``level`` or worse, sorted: the value set of a filter."""
    return sorted(name for name, s in _SPELLINGS.items() if s >= level)
