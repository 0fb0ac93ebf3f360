"""The fault-catalogue schema: what a system publishes about the faults it can suffer, as data.

Why data with a schema: the product must not import knowledge of one system (the testbed's
modules, error codes and faults) as code. The system publishes a catalogue document (JSON); the
product validates it against these models once, at the boundary, and reads it like any other
input, so a second system only needs a second document. A document that does not validate is
refused with one line naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.core.errors import InputError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CatalogAction(_Frozen):
    """A repair action of the system's control API; ``arg`` is a module, model or ``None``."""

    kind: str
    arg: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}({self.arg})" if self.arg else self.kind


class FaultEntry(_Frozen):
    """One fault: where it lives, what it looks like, and which actions clear or bypass it.

    ``scope`` ``process``: the broken state is in the target process's memory (a restart clears
    it); ``persistent``: it lives outside the process and survives restarts. ``clears`` remove
    the fault; ``bypasses`` route work around it (undoing them brings the symptoms back).
    """

    name: str
    target: str
    scope: Literal["process", "persistent"]
    description: str
    symptoms: tuple[str, ...] = ()
    error_code: str
    clears: tuple[CatalogAction, ...] = ()
    bypasses: tuple[CatalogAction, ...] = ()
    params: dict[str, float] = Field(default_factory=dict)


class ErrorCodeMeaning(_Frozen):
    """What an error code on a span says: the fault it names and whom it blames (the span's
    own service, its parent — a receiver reporting duplicates blames the sender — or its callee)."""

    fault: str
    blame: Literal["self", "parent", "callee"] = "self"


class FaultCatalog(_Frozen):
    """A system's published catalogue: its modules, call tree, error codes and faults."""

    system: str
    modules: tuple[str, ...]
    calls: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    error_codes: dict[str, ErrorCodeMeaning] = Field(default_factory=dict)
    faults: dict[str, FaultEntry]


def load_fault_catalog(path: Path) -> FaultCatalog:
    """Read and validate a published catalogue; a bad file is one :class:`InputError`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read fault catalogue: {exc.strerror}", path=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc
    try:
        return FaultCatalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "document"
        raise InputError(f"{field}: {first['msg']}", path=str(path)) from exc
