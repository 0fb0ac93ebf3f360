from __future__ import annotations

import pytest

from tools.core.severity import Severity, severity_from_number, severity_of, spellings_at_least


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("warn", Severity.WARN),
        ("WARNING", Severity.WARN),
        (" Severe ", Severity.ERROR),
        ("CRITICAL", Severity.FATAL),
        ("notice", Severity.INFO),
        ("verbose", None),
        (None, None),
        ("", None),
    ],
)
def test_every_spelling_maps_onto_one_level(name: str | None, level: Severity | None) -> None:
    assert severity_of(name) == level


def test_at_least_includes_every_spelling_of_worse_levels() -> None:
    assert spellings_at_least(Severity.ERROR) == [
        "ALERT",
        "CRITICAL",
        "EMERGENCY",
        "ERROR",
        "FATAL",
        "SEVERE",
    ]
    warn = spellings_at_least(Severity.WARN)
    assert {"WARN", "WARNING"} <= set(warn)
    assert "INFO" not in warn and "NOTICE" not in warn


@pytest.mark.parametrize(
    ("number", "level"),
    [
        (0, None),
        (1, Severity.TRACE),
        (12, Severity.INFO),
        (13, Severity.WARN),
        (24, Severity.FATAL),
    ],
)
def test_otel_severity_numbers(number: int, level: Severity | None) -> None:
    assert severity_from_number(number) == level
