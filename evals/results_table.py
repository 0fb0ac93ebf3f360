"""Rendering harness results: one rich table for the terminal, the same rows as markdown."""

from __future__ import annotations

from typing import Any

from rich.table import Table

HEADERS = (
    "method",
    "system",
    "cases",
    "Acc@1",
    "Acc@3",
    "Acc@5",
    "Avg@5",
    "type macro-F1",
    "type acc",
    "s/case",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for result in results:
        label = result["method"] + (f" ({result['note']})" if result.get("note") else "")
        for system, s in result["systems"].items():
            ft = s["fault_type"]
            out.append(
                [
                    label,
                    system,
                    str(s["cases"]),
                    _fmt(s["acc@1"]),
                    _fmt(s["acc@3"]),
                    _fmt(s["acc@5"]),
                    _fmt(s["avg@5"]),
                    _fmt(ft["macro_f1"]),
                    _fmt(ft["accuracy"]),
                    _fmt(s["seconds_per_case"]),
                ]
            )
    return out


def results_table(results: list[dict[str, Any]], title: str = "RCA evaluation") -> Table:
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("method", "system") else "right")
    for r in rows(results):
        table.add_row(*r)
    return table


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(lines) + "\n"
