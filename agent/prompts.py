"""Prompt templates live as markdown files in ``prompts/`` with named ``{placeholders}``.

Why files: an SRE can read and tune the prompts without reading code, and a template that names a
placeholder the code does not fill (or the reverse) fails loudly instead of sending a half-filled
prompt.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

from tools.core.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


@cache
def template(name: str) -> str:
    path = PROMPTS_DIR / f"{name}.md"
    if not path.is_file():
        raise ConfigError(f"prompt template {name!r} not found", source=str(path))
    return path.read_text(encoding="utf-8").strip()


def placeholders(name: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template(name)) if f}


def render(name: str, **values: object) -> str:
    """``prompts/<name>.md`` with every placeholder filled; extra or missing names are errors."""
    wanted = placeholders(name)
    if wanted != set(values):
        raise ConfigError(
            f"prompt {name!r} needs {sorted(wanted)}, got {sorted(values)}",
            source=str(PROMPTS_DIR / f"{name}.md"),
        )
    return template(name).format(**values)
