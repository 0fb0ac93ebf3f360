"""Tailing OTLP JSON span files into the store while a system writes them.

Why chunks of whole lines: a process appends spans as it ends them, so the last line of a file
may be half written; each poll ingests only the complete lines since the last offset, and each
chunk is one store source (``file@offset``), written whole or not at all.

Why it measures lateness: a span reaches the store some time after it ended (its process's
export interval, this tail's, and whatever the CPU is doing), and a live detector must not take
a span still on its way for a missing one. The tail sees that delay directly: for each chunk,
ingest time minus the earliest end among its spans.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from tools.telemetry.ingest import parse_text
from tools.telemetry.store import TelemetryStore


class SpanTail(threading.Thread):
    """Ingests the ``*.jsonl`` span files of ``spans_dir`` into ``store`` every ``interval_s``."""

    def __init__(self, spans_dir: Path, store: TelemetryStore, interval_s: float = 0.2) -> None:
        super().__init__(name="span-tail", daemon=True)
        self.dir, self.store, self.interval_s = spans_dir, store, interval_s
        self.offsets: dict[Path, int] = {}
        self.halt = threading.Event()
        self.error: Exception | None = None
        self.lateness: deque[float] = deque(maxlen=2000)  # seconds, one per chunk ingested

    def poll(self) -> None:
        for f in sorted(self.dir.glob("*.jsonl")):
            start = self.offsets.get(f, 0)
            with f.open("rb") as fh:
                fh.seek(start)
                data = fh.read()
            cut = data.rfind(b"\n") + 1
            if cut <= 0:
                continue
            self.offsets[f] = start + cut
            spans = parse_text(data[:cut].decode("utf-8"), str(f), "otlp-json").spans
            if spans.num_rows:
                self.store.insert("spans", spans, f"{f.name}@{start}")
                oldest = pc.min(spans["end_ns"]).as_py()
                if oldest is not None:
                    self.lateness.append((time.time_ns() - oldest) / 1e9)

    def lateness_s(self, q: float = 0.99) -> float | None:
        """The ``q`` quantile of how late spans reached the store so far (``None``: none yet)."""
        return float(np.quantile(list(self.lateness), q)) if self.lateness else None

    def run(self) -> None:
        while not self.halt.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # kept and reported at the end; the tail keeps going
                self.error = exc
