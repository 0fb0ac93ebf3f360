"""Tailing OTLP JSON span files into the store while a system writes them.

Why chunks of whole lines: a process appends spans as it ends them, so the last line of a file
may be half written; each poll ingests only the complete lines since the last offset, and each
chunk is one store source (``file@offset``), written whole or not at all.
"""

from __future__ import annotations

import threading
from pathlib import Path

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

    def run(self) -> None:
        while not self.halt.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # kept and reported at the end; the tail keeps going
                self.error = exc
