"""A five-service shop traced by the real OpenTelemetry SDK, exported by its OTLP/HTTP exporter.

Why the SDK itself: what ``tamo serve`` must accept is what users' services send — protobuf
bodies from ``opentelemetry-exporter-otlp-proto-http`` with its batching and retries — not a
hand-made payload. The shop (frontend -> catalog | cart + checkout -> payment) writes history
with explicit span times, so minutes of traffic take seconds to produce, and can keep sending
live traffic while an investigation runs.

The fault: from ``fault_start_ns`` on, ``payment`` is ``slowdown`` times slower and fails
``failure`` of its requests, and checkout and frontend fail with it. What was sent is counted
(``sent``), so a test can compare what the store holds and what the report says with it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

SERVICES = ("frontend", "catalog", "cart", "checkout", "payment")
MS = 1_000_000


@dataclass
class ShopFault:
    start_ns: int
    slowdown: float = 8.0
    failure: float = 0.30


@dataclass
class Shop:
    """Per-service tracer providers exporting to ``endpoint`` (``.../v1/traces``)."""

    endpoint: str
    seed: int = 7
    checkout_share: float = 0.3
    payment_ms: float = 20.0
    batch_size: int = 512
    fault: ShopFault | None = None
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 0))
    payment_requests: int = 0
    payment_failures: int = 0
    _providers: dict[str, TracerProvider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        for svc in SERVICES:
            tp = TracerProvider(resource=Resource.create({"service.name": svc}))
            exporter = OTLPSpanExporter(endpoint=self.endpoint, timeout=30)
            tp.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=200_000,
                    max_export_batch_size=self.batch_size,
                    schedule_delay_millis=200,
                )
            )
            self._providers[svc] = tp

    def _tracer(self, svc: str) -> Tracer:
        return self._providers[svc].get_tracer("shop")

    def _span(
        self, svc: str, name: str, start: int, end: int, parent: object | None, error: bool
    ) -> object:
        ctx = set_span_in_context(parent) if parent is not None else None  # type: ignore[arg-type]
        span = self._tracer(svc).start_span(
            name, context=ctx, kind=SpanKind.SERVER, start_time=start
        )
        span.set_attribute("http.route", name)
        if error:
            span.set_attribute("http.status_code", 500)
            span.set_status(Status(StatusCode.ERROR, "payment failed"))
        else:
            span.set_attribute("http.status_code", 200)
        span.end(end_time=end)
        self.sent[svc] += 1
        return span

    def request(self, t_ns: int) -> None:
        """One user request starting at ``t_ns``: browse (catalog) or checkout (cart, payment)."""
        rng = self.rng
        faulty = self.fault is not None and t_ns >= self.fault.start_ns
        with self._lock:
            root = self._tracer("frontend").start_span(
                "GET /", kind=SpanKind.SERVER, start_time=t_ns
            )
            at = t_ns + int(rng.uniform(0.5, 1.5) * MS)
            error = False
            if rng.random() < self.checkout_share:
                cart_ms = rng.uniform(3, 6)
                self._span("cart", "GetCart", at, at + int(cart_ms * MS), root, False)
                at += int(cart_ms * MS)
                pay_ms = self.payment_ms * rng.uniform(0.8, 1.2)
                fail = False
                if faulty:
                    assert self.fault is not None
                    pay_ms *= self.fault.slowdown
                    fail = rng.random() < self.fault.failure
                self.payment_requests += faulty
                self.payment_failures += fail
                co_start = at
                checkout = self._tracer("checkout").start_span(
                    "PlaceOrder",
                    context=set_span_in_context(root),
                    kind=SpanKind.SERVER,
                    start_time=co_start,
                )
                p_start = co_start + int(1 * MS)
                p_end = p_start + int(pay_ms * MS)
                self._span("payment", "Charge", p_start, p_end, checkout, fail)
                at = p_end + int(1 * MS)
                if fail:
                    checkout.set_status(Status(StatusCode.ERROR, "payment failed"))
                    checkout.set_attribute("http.status_code", 502)
                    error = True
                checkout.end(end_time=at)
                self.sent["checkout"] += 1
            else:
                cat_ms = rng.uniform(5, 12)
                self._span("catalog", "ListProducts", at, at + int(cat_ms * MS), root, False)
                at += int(cat_ms * MS)
            if error:
                root.set_status(Status(StatusCode.ERROR, "checkout failed"))
                root.set_attribute("http.status_code", 502)
            root.set_attribute("http.route", "/")
            root.end(end_time=at + int(0.5 * MS))
            self.sent["frontend"] += 1

    def history(self, start_ns: int, end_ns: int, rate_per_s: float) -> None:
        """Requests at ``rate_per_s`` with start times in [start_ns, end_ns)."""
        step = int(1e9 / rate_per_s)
        for t in range(start_ns, end_ns, step):
            self.request(t + int(self.rng.uniform(0, step * 0.5)))

    def live(self, rate_per_s: float, halt: threading.Event) -> threading.Thread:
        """Keep sending requests stamped now until ``halt`` is set."""

        def loop() -> None:
            while not halt.wait(1.0 / rate_per_s):
                self.request(time.time_ns())

        t = threading.Thread(target=loop, name="shop-live", daemon=True)
        t.start()
        return t

    @property
    def spans_sent(self) -> int:
        return sum(self.sent.values())

    def flush(self) -> bool:
        return all(tp.force_flush(60_000) for tp in self._providers.values())

    def shutdown(self) -> None:
        for tp in self._providers.values():
            tp.shutdown()
