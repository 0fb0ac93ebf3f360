"""JSON logs: one object per line with the correlation fields of the seed (ch. 3, 6).

Why a module of its own: the controller logs its control actions in the same format but must
not pay for importing the tracing stack; only the OpenTelemetry *API* is needed to read the
current span's ids.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the correlation fields of the seed (ch. 3, 6).

    ``service`` repeats ``module`` because log readers take the entity from ``service``.
    """

    def __init__(self, module: str) -> None:
        super().__init__()
        self.module = module

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else "",
            "span_id": format(ctx.span_id, "016x") if ctx.is_valid else "",
            "task_id": getattr(record, "task_id", ""),
            "module": self.module,
            "service": self.module,
            "error_code": getattr(record, "error_code", ""),
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(module: str, log_dir: Path) -> logging.Logger:
    """The module's JSON logger writing ``<log_dir>/<module>.jsonl``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / f"{module}.jsonl", encoding="utf-8")
    handler.setFormatter(JsonFormatter(module))
    logger = logging.getLogger(f"testbed.{module}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_event(
    logger: logging.Logger,
    level: int,
    message: str,
    *,
    task_id: str = "",
    error_code: str = "",
    **fields: Any,
) -> None:
    """Log ``message`` with the correlation fields; extra ``fields`` become JSON keys."""
    logger.log(
        level, message, extra={"task_id": task_id, "error_code": error_code, "fields": fields}
    )
