"""Rendering harness results: one rich table for the terminal, the same rows as markdown."""

from __future__ import annotations

from typing import Any

import numpy as np
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
        label += f" [{result['protocol']}]" if result.get("protocol") else ""
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


def _spread(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"{np.mean(vals):.3f} +- {np.std(vals):.3f}"


def generalisation_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per (protocol, folds, variant, system): figures as mean +- std over seeds."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        for system, s in r["systems"].items():
            groups.setdefault((r["protocol"], r["fold"], r["variant"], system), []).append(s)
    out = []
    for (protocol, fold, variant, system), items in groups.items():
        cal = [s.get("calibration") or {} for s in items]
        ft = [s.get("fault_type") or {} for s in items]
        out.append(
            [
                protocol,
                fold,
                variant,
                system,
                str(items[0]["cases"]),
                str(len(items)),
                _spread([s["acc@1"] for s in items]),
                _spread([s["acc@3"] for s in items]),
                _spread([c.get("ece") for c in cal]),
                _spread([c.get("acc@1_at_gate") for c in cal]),
                _spread([c.get("cases_at_gate") for c in cal]),
                _spread([f.get("macro_f1") for f in ft]),
                _spread([s.get("unknown_rate") for s in items]),
                _spread([float(s["no_change_point"]) for s in items]),
                _spread([s["seconds_per_case"] for s in items]),
            ]
        )
    return out


GEN_HEADERS = (
    "protocol",
    "folds",
    "variant",
    "system",
    "cases",
    "seeds",
    "Acc@1",
    "Acc@3",
    "ECE",
    "Acc@1 conf>=0.8",
    "n conf>=0.8",
    "type macro-F1",
    "type unknown",
    "no change pt",
    "s/case (T1+T2+rank)",
)


def generalisation_markdown(runs: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(GEN_HEADERS) + " |", "|" + "---|" * len(GEN_HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in generalisation_rows(runs)]
    return "\n".join(lines) + "\n"
