"""The strategy library: YAML files in the seed's schema, validated by pydantic.

Why YAML and not code: SREs add and tune strategies without a release, and a reviewer can read
what the engine will do (chapter 4: ``strategy_id`` / ``condition`` / ``actions`` / ``rollback``).
Why strict validation: a typo in a strategy must fail at load time with the file, line and field,
never at 3 a.m. when the strategy is first needed.

Accepted shorthands, as written in the seed: an action may be ``{graceful_restart: executor}``
(type and target) or ``{reset_task_context: true}``; a metric threshold may be the string
``"p95_latency_s > 8000ms"`` (``ms`` is converted to seconds, ``%`` to a fraction); the
condition key ``latency_gt: 8.0`` means ``p95_latency_s > 8.0`` and ``root_cause`` is an alias of
``fault_type``.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tools.core.errors import ConfigError
from tools.repair.diagnosis import AlarmLevel

# Every action type an executor may be asked to perform. One vocabulary for all executors, so a
# strategy names *what* to do and the executor decides *how* (HTTP control API, Kubernetes PATCH).
KNOWN_ACTIONS: dict[str, str] = {
    "graceful_restart": "restart a module's process in place (clears in-memory faults)",
    "rollout_restart": "Kubernetes rollout restart of a Deployment",
    "scale": "set the replica count of a Deployment (params.replicas)",
    "switch_model": "route inference to another model (params.model)",
    "set_skip_flag": "skip a non-critical module (params.enabled, default true)",
    "restore_snapshot": "restore the last good state snapshot (state rollback)",
    "redispatch_task": "re-dispatch unfinished tasks, deduped by task_id + seq_no",
    "notify": "hand the plan to a person or another system (webhook)",
}

PRECHECKS = ("snapshot_exists", "hot_restart_supported", "no_unfinished_child_chains")

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
_THRESHOLD_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_:][A-Za-z0-9_:.]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?P<value>-?\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%)?\s*$"
)
_UNIT = {"ms": 0.001, "s": 1.0, "%": 0.01, None: 1.0}

Op = Literal[">", ">=", "<", "<=", "=="]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricThreshold(_Strict):
    """``metric op value``; durations in seconds, ratios as fractions."""

    metric: str
    op: Op
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _THRESHOLD_RE.match(data)
            if not m:
                raise ValueError(f"expected 'metric op value[ms|s|%]', got {data!r}")
            return {
                "metric": m["metric"],
                "op": m["op"],
                "value": float(m["value"]) * _UNIT[m["unit"]],
            }
        return data

    def holds(self, measured: float) -> bool:
        return bool(_OPS[self.op](measured, self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class Condition(_Strict):
    """When a strategy applies. Every key given must hold; an empty condition matches nothing.

    ``fault_type``/``module``/``service`` are glob patterns (``*Adapter``) matched
    case-insensitively; ``error_code`` holds when any listed code was observed; ``severity`` is a
    minimum; metric thresholds need the metric in the diagnosis (a missing value does not hold).
    """

    fault_type: list[str] = Field(default_factory=list)
    module: list[str] = Field(default_factory=list)
    service: list[str] = Field(default_factory=list)
    error_code: list[str] = Field(default_factory=list)
    metric: list[MetricThreshold] = Field(default_factory=list)
    severity: AlarmLevel | None = None
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _seed_shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "root_cause" in data:
            if "fault_type" in data:
                raise ValueError("give either root_cause or fault_type, not both")
            data["fault_type"] = data.pop("root_cause")
        if "latency_gt" in data:
            metrics = list(_as_list(data.get("metric", [])))
            metrics.append({"metric": "p95_latency_s", "op": ">", "value": data.pop("latency_gt")})
            data["metric"] = metrics
        return data

    @field_validator("fault_type", "module", "service", "error_code", "metric", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not (self.fault_type or self.module or self.service or self.error_code or self.metric):
            raise ValueError(
                "condition needs at least one of fault_type/root_cause, module, service, "
                "error_code, metric"
            )
        return self


def glob_match(value: str | None, patterns: Iterable[str]) -> str | None:
    """The first pattern matching ``value`` (case-insensitive glob), or None."""
    if value is None:
        return None
    for p in patterns:
        if fnmatch.fnmatchcase(value.lower(), p.lower()):
            return p
    return None


class ActionSpec(_Strict):
    """One step: ``type`` from :data:`KNOWN_ACTIONS`, a ``target`` (``{module}`` and
    ``{service}`` are replaced by the diagnosis), an optional executor override and params."""

    type: str
    target: str = "{module}"
    executor: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data and len(data) == 1:
            ((kind, value),) = data.items()
            if value is True or value is None:
                return {"type": kind}
            if isinstance(value, str):
                return {"type": kind, "target": value}
            if isinstance(value, dict):
                return {"type": kind, **value}
            raise ValueError(f"shorthand action {kind!r} needs a target string, true or a mapping")
        return data

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in KNOWN_ACTIONS:
            raise ValueError(
                f"unknown action type {v!r}; known: {', '.join(sorted(KNOWN_ACTIONS))}"
            )
        return v


class VerifyCheck(_Strict):
    """A success criterion checked after execution: a PromQL expression (through a
    ``MetricSource``) or a trace statistic of ``service`` (through a ``TraceSource``)."""

    name: str
    promql: str | None = None
    trace: Literal["error_ratio", "p95_ms", "span_count", "root_ratio"] | None = None
    service: str = "{module}"
    op: Op
    value: float
    # with a fault-free baseline known, "no worse than factor x normal": the threshold becomes
    # max(value, factor x baseline) for < / <= and min(value, factor x baseline) for > / >=
    baseline_factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> VerifyCheck:
        if (self.promql is None) == (self.trace is None):
            raise ValueError("a verify check needs exactly one of promql or trace")
        return self


class VerifySpec(_Strict):
    """Checks must all pass on ``consecutive`` polls within ``timeout_s`` of the last action;
    each poll looks at the last ``window_s`` seconds."""

    checks: list[VerifyCheck] = Field(min_length=1)
    window_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=20.0, gt=0)
    interval_s: float = Field(default=0.5, gt=0)
    consecutive: int = Field(default=2, ge=1)
    settle_s: float = Field(default=0.0, ge=0)


class Strategy(_Strict):
    """One repair strategy of the library."""

    strategy_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    repair_class: Literal[
        "restart",
        "fallback",
        "local_rollback",
        "trace_rebuild",
        "skip",
        "state_rollback",
        "redispatch",
        "throttle",
        "scale",
        "notify",
    ]
    priority: int = 0
    auto: bool = False
    executor: str = "testbed"
    condition: Condition
    prechecks: list[
        Literal["snapshot_exists", "hot_restart_supported", "no_unfinished_child_chains"]
    ] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(min_length=1)
    rollback: list[ActionSpec] = Field(default_factory=list)
    verify: VerifySpec | None = None
    ttl_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    fallback_used: bool = False  # the seed's audit field: does this strategy degrade to a fallback?


BUILTIN_DIR = Path(str(resources.files("tools.repair") / "strategies"))


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at pydantic error location ``loc`` (best effort)."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_strategies(text: str, source: str) -> list[Strategy]:
    """Strategies from one YAML document (a list, or a mapping with a ``strategies`` list)."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        src = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", source=src) from exc
    prefix: tuple[int | str, ...] = ()
    if isinstance(data, dict) and "strategies" in data:
        data, prefix = data["strategies"], ("strategies",)
    if not isinstance(data, list):
        raise ConfigError(
            "expected a list of strategies (or 'strategies:' with a list)", source=source
        )
    out: list[Strategy] = []
    for i, item in enumerate(data):
        try:
            out.append(Strategy.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = (*prefix, i, *err["loc"])
            line = _line_of(root, loc)
            sid = item.get("strategy_id", f"#{i}") if isinstance(item, dict) else f"#{i}"
            more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise ConfigError(
                f"strategy {sid}: field {_field(err['loc']) or '<root>'}: {err['msg']}{more}",
                source=f"{source}:{line}" if line else source,
            ) from exc
    return out


def load_strategies(paths: Path | Iterable[Path] | None = None) -> list[Strategy]:
    """Load and validate strategy files (``*.yaml`` in a directory); default: the built-in library.

    Strategy ids must be unique across all files.
    """
    if paths is None:
        paths = [BUILTIN_DIR]
    elif isinstance(paths, Path):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError("strategy file or directory not found", source=str(p))
    seen: dict[str, str] = {}
    out: list[Strategy] = []
    for f in files:
        for s in parse_strategies(f.read_text(encoding="utf-8"), str(f)):
            if s.strategy_id in seen:
                raise ConfigError(
                    f"duplicate strategy_id {s.strategy_id!r} (first in {seen[s.strategy_id]})",
                    source=str(f),
                )
            seen[s.strategy_id] = str(f)
            out.append(s)
    if not out:
        raise ConfigError("no strategies found", source=", ".join(str(p) for p in paths))
    return out
