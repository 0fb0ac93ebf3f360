"""What a tool is: one typed function, described once, exposed to the agent and to MCP.

Why a spec object rather than decorating for one framework: the same function is bound to the
LangGraph agent (as an OpenAI function schema) and registered with fastmcp (as a flat-parameter
tool). Both views are derived here from the function's pydantic input model and its docstring,
so there is exactly one definition of each tool and one place where its description lives.

Outputs are typed models: every telemetry-derived string (log line, span attribute, service name,
error code, metric label) is a string field of its own, never spliced into prose, and reaches a
model only as JSON (:func:`tools.telemetry.untrusted.model_json`), so no content can pose as an
instruction by closing a quote.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, Field


class ScopeInput(BaseModel):
    """Where to look; every field defaults to the incident the context is scoped to."""

    start: datetime | None = Field(None, description="UTC; default: incident window")
    end: datetime | None = None
    services: list[str] | None = None


class WindowInput(ScopeInput):
    top_k: int = Field(5, ge=1, le=20)


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its function ``fn(inp, ctx) -> output`` plus the facts both fronts need."""

    name: str
    fn: Callable[..., BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    read_only: bool
    destructive: bool
    idempotent: bool

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.fn.__doc__ or "")

    def openai_schema(self) -> dict[str, Any]:
        """The tool as an OpenAI ``tools`` entry (what ``ChatOpenAI.bind_tools`` sends), in the
        tersest schema that still validates: every token here is paid on every LLM call."""
        schema = terse_schema(compact_schema(self.input_model.model_json_schema()))
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }

    def flat_signature(self) -> inspect.Signature:
        """A signature with one keyword parameter per input field (what fastmcp introspects)."""
        params = []
        for fname, field in self.input_model.model_fields.items():
            meta = Field(description=field.description) if field.description else Field()
            default = (
                inspect.Parameter.empty
                if field.is_required()
                else field.get_default(call_default_factory=True)
            )
            params.append(
                inspect.Parameter(
                    fname,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=default,
                    annotation=Annotated[field.annotation, meta],
                )
            )
        return inspect.Signature(params, return_annotation=self.output_model)

    def __call__(self, ctx: Any, **kwargs: Any) -> BaseModel:
        """Validate ``kwargs`` against the input model and run the tool."""
        return self.fn(self.input_model.model_validate(kwargs), ctx)


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop ``title`` keys pydantic adds everywhere: they repeat the field names and cost tokens."""
    if isinstance(schema, dict):
        return {k: compact_schema(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [compact_schema(v) for v in schema]
    return schema


def terse_schema(schema: Any) -> Any:
    """``anyOf [T, null]`` with ``default: null`` becomes plain ``T`` (optional = not required)."""
    if isinstance(schema, list):
        return [terse_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: terse_schema(v) for k, v in schema.items() if not (k == "default" and v is None)}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        (kept,) = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        out.update(kept)
    return out


def tool(
    *, read_only: bool = True, destructive: bool = False, idempotent: bool = True
) -> Callable[[Callable[..., BaseModel]], ToolSpec]:
    """Describe ``fn(inp: InputModel, ctx: ToolContext) -> OutputModel`` as a :class:`ToolSpec`.

    The input and output models are read from the type hints; the docstring is the description a
    model reads, so it says what the tool answers, its defaults, its cost and what to call first.
    Nothing is registered here: the catalog (:data:`tools.toolbox.TOOLBOX`) lists the tools.
    """

    def describe(fn: Callable[..., BaseModel]) -> ToolSpec:
        hints = get_type_hints(fn)
        first = next(iter(inspect.signature(fn).parameters))
        return ToolSpec(
            name=fn.__name__,
            fn=fn,
            input_model=hints[first],
            output_model=hints["return"],
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
        )

    return describe


def catalog(*specs: ToolSpec) -> dict[str, ToolSpec]:
    """Tools by name; a name listed twice is a programming error caught at import."""
    out: dict[str, ToolSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"tool {spec.name!r} listed twice")
        out[spec.name] = spec
    return out
