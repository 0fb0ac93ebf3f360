"""The repair metrics of chapter 5, in a registry of their own.

Why a private registry: tests and the demo create several runners in one process; a registry per
runner keeps their counts apart, and ``tamo`` exposes the one it uses. The names are the seed's:
``repair_attempt_total``, ``repair_success_total``, ``trace_rebuild_total`` (counters, by
strategy), ``rollback_latency_seconds`` (histogram) and ``auto_fix_success_rate`` (gauge,
success / attempts since start).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class RepairMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.attempts = Counter("repair_attempt", "Repair attempts", ["strategy_id"], registry=r)
        self.successes = Counter(
            "repair_success", "Repairs verified successful", ["strategy_id"], registry=r
        )
        self.failures = Counter(
            "repair_failure", "Repairs that failed or were rolled back", ["strategy_id"], registry=r
        )
        self.trace_rebuilds = Counter(
            "trace_rebuild", "Call chains rebuilt by a repair", ["strategy_id"], registry=r
        )
        self.rollback_latency = Histogram(
            "rollback_latency_seconds",
            "Time to roll a failed repair back",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.repair_latency = Histogram(
            "repair_latency_seconds",
            "Time from plan to verified outcome",
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 60, 120),
            registry=r,
        )
        self.success_rate = Gauge(
            "auto_fix_success_rate", "Verified repairs / attempts since start", registry=r
        )
        self._attempts = 0
        self._successes = 0

    def attempt(self, strategy_id: str) -> None:
        self._attempts += 1
        self.attempts.labels(strategy_id).inc()
        self._rate()

    def outcome(self, strategy_id: str, success: bool, seconds: float, rebuilt: int = 0) -> None:
        (self.successes if success else self.failures).labels(strategy_id).inc()
        self._successes += int(success)
        if rebuilt:
            self.trace_rebuilds.labels(strategy_id).inc(rebuilt)
        self.repair_latency.observe(seconds)
        self._rate()

    def _rate(self) -> None:
        self.success_rate.set(self._successes / self._attempts if self._attempts else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
