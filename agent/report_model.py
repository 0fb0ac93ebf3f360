"""The incident report: one validated model, three renderings (markdown, JSON, Slack blocks).

Why a model first: the CLI, the MCP ``diagnose_incident`` tool, Slack and the evaluation harness
all consume the same report; the sections (analysis, impact, priority, remediation, alternatives,
modalities, what was not checked) are fields, so a rendering can never silently drop one, and
tests can assert every section is present.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from tools.telemetry.model import TimeWindow
from tools.telemetry.untrusted import FlaggedText, markdown, slack

NO_LLM = "produced without an LLM (deterministic planner and reporter)"


class EvidenceItem(BaseModel):
    """One piece of evidence: which tool, the query it ran, a link to the raw data, a summary."""

    id: str
    tool: str
    query: str
    link: str | None = None
    summary: str
    flagged: list[FlaggedText] = Field(default_factory=list)


class Hypothesis(BaseModel):
    entity: str
    confidence: float
    why: str = ""


class Analysis(BaseModel):
    summary: str
    root_cause: str | None
    root_cause_confidence: float | None
    fault_type: str
    fault_probability: float
    fault_low_confidence: bool
    causal_chain: list[str] = Field(default_factory=list)
    evidence: list[EvidenceItem] = Field(default_factory=list)
    known_incidents: list[str] = Field(default_factory=list)
    llm_root_cause: str | None = None  # the LLM's own final judgement, when an LLM took part
    disagreement: str | None = None  # the LLM's judgement vs the ranking, with both's evidence


class ServiceImpact(BaseModel):
    """One service now vs normal: request rate, error rate and latency of the requests it
    served (its entry spans: spans whose caller is another service or nobody)."""

    service: str
    entry_point: bool = False  # it starts traces: users (or their clients) call it
    requests: int = 0
    rate_per_s: float = 0.0
    baseline_rate_per_s: float | None = None
    error_rate: float = 0.0
    baseline_error_rate: float | None = None
    p50_ms: float | None = None
    baseline_p50_ms: float | None = None
    p95_ms: float | None = None
    baseline_p95_ms: float | None = None
    affected: bool = False
    why: str = ""  # which change made it affected

    @computed_field  # type: ignore[prop-decorator]
    @property
    def latency_factor(self) -> float | None:
        """Typical (median) latency now / at baseline: 8.0 means eight times slower."""
        if self.p50_ms and self.baseline_p50_ms:
            return round(self.p50_ms / self.baseline_p50_ms, 3)
        return None


class Impact(BaseModel):
    """User-facing figures (the entry points' requests) and every service of the window, each
    now vs its baseline; ``baseline`` says where normal was measured."""

    affected_services: list[str] = Field(default_factory=list)
    entry_points: list[str] = Field(default_factory=list)
    requests: int = 0
    error_rate: float = 0.0
    baseline_error_rate: float | None = None
    p95_ms: float | None = None
    baseline_p95_ms: float | None = None
    latency_change_pct: float | None = None
    baseline: str | None = None  # e.g. "the 5 min before the window"; None: no baseline
    services: list[ServiceImpact] = Field(default_factory=list)
    error_codes: list[str] = Field(default_factory=list)  # most frequent first
    trace_ids: list[str] = Field(default_factory=list)  # a few failing or slowest traces


def _service_table(rows: list[ServiceImpact]) -> list[str]:
    if not rows:
        return []

    def vs(now: float | None, base: float | None, fmt: str) -> str:
        if now is None:
            return "-"
        return fmt.format(now) + ("" if base is None else " (" + fmt.format(base) + ")")

    out = [
        "",
        "| service | requests/s (normal) | error rate (normal) | p50 ms (normal) "
        "| p95 ms (normal) | affected |",
        "|---|---|---|---|---|---|",
    ]
    for s in rows:
        name = f"{markdown(s.service)}{' (entry)' if s.entry_point else ''}"
        factor = f" ×{s.latency_factor:.1f}" if s.latency_factor else ""
        out.append(
            f"| {name} | {vs(s.rate_per_s, s.baseline_rate_per_s, '{:.1f}')} "
            f"| {vs(s.error_rate, s.baseline_error_rate, '{:.1%}')} "
            f"| {vs(s.p50_ms, s.baseline_p50_ms, '{:.1f}')}{factor} "
            f"| {vs(s.p95_ms, s.baseline_p95_ms, '{:.1f}')} "
            f"| {markdown(s.why) if s.affected else ''} |"
        )
    return out


class Priority(BaseModel):
    level: Literal["P0", "P1", "P2", "P3"]
    rule: str


class Remediation(BaseModel):
    status: str  # none-matched | proposed | awaiting-approval | denied | dry-run | executed | ...
    strategy: str | None = None
    description: str = ""
    reasons: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    dry_run: str | None = None
    results: list[str] = Field(default_factory=list)
    verification: str | None = None
    rollback_plan: list[str] = Field(default_factory=list)


class Usage(BaseModel):
    tool_calls: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rejected_tool_calls: int = 0
    seconds: float = 0.0


class Report(BaseModel):
    title: str
    window: TimeWindow
    services: list[str] = Field(default_factory=list)
    produced_with: str
    analysis: Analysis
    impact: Impact
    priority: Priority
    remediation: Remediation
    alternatives: list[Hypothesis] = Field(default_factory=list)
    modalities_used: list[str] = Field(default_factory=list)
    not_checked: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)

    # -- renderings ------------------------------------------------------------------------

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @property
    def flagged(self) -> list[FlaggedText]:
        """Telemetry strings the evidence flagged for a person (shown as data, never obeyed)."""
        return [f for e in self.analysis.evidence for f in e.flagged]

    def to_markdown(self) -> str:
        """Markdown in which every value is escaped text (:func:`markdown`): a log line or a
        service name can neither form a link, image or heading nor end the section it is in."""
        a, i, p, r = self.analysis, self.impact, self.priority, self.remediation
        m = markdown
        out = [
            f"# {m(self.title)}",
            f"_{self.window.start.isoformat()} – {self.window.end.isoformat()}; "
            f"{self.produced_with}_",  # our own words, not telemetry
            "",
            "## Analysis",
            m(a.summary),
            "",
            f"- **Root cause:** {m(_pct_entity(a.root_cause, a.root_cause_confidence))}",
            f"- **Fault type:** {m(a.fault_type)} ({a.fault_probability:.0%}"
            f"{', low confidence' if a.fault_low_confidence else ''})",
        ]
        if a.causal_chain:
            out.append(f"- **Causal chain:** {' → '.join(m(x) for x in a.causal_chain)}")
        if a.llm_root_cause:
            out.append(f"- **LLM's judgement:** {m(a.llm_root_cause)}")
        if a.disagreement:
            out.append(f"- **Disagreement:** {m(a.disagreement)}")
        if a.known_incidents:
            out.append(f"- **Known incidents:** {'; '.join(m(x) for x in a.known_incidents)}")
        if a.evidence:
            out += ["", "### Evidence"]
            out += [
                f"- \\[{e.id}\\] {m(e.tool)} {m(e.summary)} — query {m(e.query)}"
                + (f" (link: {m(e.link)})" if e.link else "")
                for e in a.evidence
            ]
        if self.flagged:
            out += ["", "### Flagged telemetry (data, never instructions)"]
            out += [f"- {m(f.source)} — {', '.join(f.why)}: {m(f.text)}" for f in self.flagged]
        out += [
            "",
            "## Impact",
            f"- Baseline: {m(i.baseline or 'none (figures are not compared with normal)')}",
            f"- Affected services: {m(', '.join(i.affected_services)) or 'none detected'}",
            f"- Entry points: {m(', '.join(i.entry_points)) or 'none seen'}; "
            f"{i.requests} requests in the window",
            f"- Error rate (entry points): {i.error_rate:.2%}"
            + _vs(i.baseline_error_rate, "{:.2%}"),
            f"- p95 latency (entry points): {_ms(i.p95_ms)}"
            + _vs(i.baseline_p95_ms, "{:.1f} ms")
            + (f" ({i.latency_change_pct:+.0f}%)" if i.latency_change_pct is not None else ""),
            *_service_table(i.services),
            "",
            "## Priority",
            f"**{p.level}** — {m(p.rule)}",
            "",
            "## Remediation",
            f"- Status: {m(r.status)}",
        ]
        if r.strategy:
            out.append(f"- Strategy: {m(r.strategy)} — {m(r.description)}")
        if r.reasons:
            out.append(f"- Why: {m('; '.join(r.reasons))}")
        out += [f"- Action: {m(x)}" for x in r.actions]
        if r.dry_run:
            out.append(f"- Dry run: {m(r.dry_run)}")
        out += [f"- Result: {m(x)}" for x in r.results]
        if r.verification:
            out.append(f"- Verification: {m(r.verification)}")
        out += [f"- Rollback: {m(x)}" for x in r.rollback_plan]
        out += ["", "## Alternative hypotheses"]
        out += [
            f"- {m(h.entity)} ({h.confidence:.0%}) {m(h.why)}".rstrip() for h in self.alternatives
        ] or ["- none ranked"]
        out += [
            "",
            "## Modalities used",
            m(", ".join(self.modalities_used)) or "none",
            "",
            "## Not checked",
        ]
        out += [f"- {m(x)}" for x in self.not_checked] or ["- nothing left unchecked"]
        u = self.usage
        out += [
            "",
            f"_tool calls {u.tool_calls}, LLM calls {u.llm_calls}, "
            f"prompt tokens {u.prompt_tokens}, completion tokens {u.completion_tokens}, "
            f"{u.seconds:.2f} s_",
        ]
        return "\n".join(out) + "\n"

    def to_slack_blocks(self, *, approval_id: str | None = None) -> list[dict[str, Any]]:
        """Slack Block Kit: header, analysis, impact/priority fields, remediation, and
        Approve/Deny buttons when ``approval_id`` names a plan waiting for a human."""
        a, i, p, r = self.analysis, self.impact, self.priority, self.remediation

        def md(text: str) -> dict[str, Any]:
            return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}

        e_ = slack  # every value escaped: no <url|label> link or mention can form

        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            md(f"*{p.level}* — {e_(p.rule)}\n{e_(a.summary)}"),
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": "*Root cause*\n"
                        + e_(_pct_entity(a.root_cause, a.root_cause_confidence)),
                    },
                    {
                        "type": "mrkdwn",
                        "text": f"*Fault type*\n{e_(a.fault_type)} ({a.fault_probability:.0%})",
                    },
                    {"type": "mrkdwn", "text": f"*Error rate*\n{i.error_rate:.2%}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Affected*\n{e_(', '.join(i.affected_services[:6])) or '-'}",
                    },
                ],
            },
        ]
        if a.evidence:
            blocks.append(
                md("*Evidence*\n" + "\n".join(f"• {e_(e.summary)}" for e in a.evidence[:5]))
            )
        if self.flagged:
            blocks.append(
                md(
                    "*Flagged telemetry (data, never instructions)*\n"
                    + "\n".join(f"• {e_(f.source)}: {e_(f.text)}" for f in self.flagged[:5])
                )
            )
        rem = f"*Remediation* ({e_(r.status)})"
        if r.strategy:
            rem += f"\n{e_(r.strategy)}: " + e_("; ".join(r.actions))
        if r.dry_run:
            rem += f"\nDry run: {e_(r.dry_run)}"
        blocks.append(md(rem))
        if self.alternatives:
            blocks.append(
                md(
                    "*Alternatives*: "
                    + ", ".join(f"{e_(h.entity)} ({h.confidence:.0%})" for h in self.alternatives)
                )
            )
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": self.produced_with}]}
        )
        if approval_id:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": "repair_approval",
                    "elements": [
                        {
                            "type": "button",
                            "style": "primary",
                            "action_id": "approve_repair",
                            "text": {"type": "plain_text", "text": "Approve"},
                            "value": approval_id,
                        },
                        {
                            "type": "button",
                            "style": "danger",
                            "action_id": "deny_repair",
                            "text": {"type": "plain_text", "text": "Deny"},
                            "value": approval_id,
                        },
                    ],
                }
            )
        return blocks


def _pct_entity(entity: str | None, confidence: float | None) -> str:
    if entity is None:
        return "undetermined"
    return f"{entity} ({confidence:.0%})" if confidence is not None else entity


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def _vs(baseline: float | None, fmt: str) -> str:
    return "" if baseline is None else f" (baseline {fmt.format(baseline)})"
