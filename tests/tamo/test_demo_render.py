"""What ``tamo demo`` tells an SRE about the knowledge-base match and the chosen plan."""

from __future__ import annotations

from tamo.demo_render import Live, fingerprint_lines, plan_lines
from tools.toolbox.repair import PlanRepairResult
from tools.toolbox.traces import FingerprintMatch, MatchFingerprintResult


def test_a_match_names_the_kb_entry_its_fix_and_the_similarity() -> None:
    r = MatchFingerprintResult(
        checked=2,
        matches=[
            FingerprintMatch(
                fingerprint_id="fp-3a9", root_cause="InferenceRPC", strategy="restart", score=0.93
            )
        ],
    )
    head, _, details = fingerprint_lines(r)
    assert "1 of 2" in head
    assert details == [
        "fingerprint fp-3a9: KB entry root cause InferenceRPC, fix that worked restart, "
        "similarity 0.93"
    ]
    head, _, details = fingerprint_lines(MatchFingerprintResult(checked=3, matches=[]))
    assert "3 fingerprint(s)" in head and "no known incident" in head and details == []


def test_the_plan_says_what_why_how_sure_and_the_gates_verdict() -> None:
    r = PlanRepairResult(
        plan_id="p1",
        strategy="executor_restart_fallback",
        description="route to the fallback, restart",
        auto=True,
        actions=["1. switch_model InferenceRPC via testbed"],
        reasons=['fault_type "inference_hang" ~ inference_hang', "priority +2"],
        alternatives=["model_fallback_switch (11)"],
        executable=False,
        held_back=["confidence 0.40 < 0.8"],
        plan={
            "diagnosis": {
                "service": "InferenceRPC",
                "module": None,
                "confidence": 0.4,
                "confidence_calibrated": False,
                "evidence_modalities": ["traces"],
                "kb_match": False,
            }
        },
    )
    head, _, lines = plan_lines(r)
    assert head.startswith("plan: executor_restart_fallback (automatic)")
    text = "\n".join(lines)
    assert "target InferenceRPC; actions: 1. switch_model InferenceRPC" in text
    assert "why: fault_type" in text and "priority +2" in text
    assert "confidence 0.40 (uncalibrated" in text and "modalities traces" in text
    assert "gate: holds it back: confidence 0.40 < 0.8" in text
    assert "alternatives: model_fallback_switch (11)" in text
    head, _, lines = plan_lines(PlanRepairResult(plan_id=None, reasons=["a: no module"]))
    assert head == "plan_repair: no strategy applies" and lines == ["rejected: a: no module"]


def test_graph_events_become_stage_lines_with_details() -> None:
    live = Live(quiet=True)
    live.graph_event(
        {
            "type": "tool_result",
            "tool": "match_fingerprint",
            "summary": "",
            "result": MatchFingerprintResult(checked=1, matches=[]),
        }
    )
    live.graph_event(
        {
            "type": "tool_call",
            "tool": "plan_repair",
            "args": {
                "service": "InferenceRPC",
                "fault_type": "inference_hang",
                "severity": "critical",
                "error_codes": ["MODEL_TIMEOUT"],
            },
        }
    )
    stages = [(e["stage"], e["message"]) for e in live.events]
    assert stages[0][0] == "investigate" and "no known incident" in stages[0][1]
    assert stages[1] == (
        "localize",
        "root cause: InferenceRPC.inference_hang (severity critical, error codes MODEL_TIMEOUT)",
    )
