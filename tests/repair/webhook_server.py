"""A loopback webhook receiver that records every call (for executor and runner tests).

It speaks the generic webhook executor's protocol (tools/repair/executors/webhook.py): a JSON
POST with ``mode``/``action``/``target``/``params``/``key`` and an ``Idempotency-Key`` header.
``fail_modes`` makes chosen modes answer ``{"ok": false}``; ``delay_s`` slows ``execute``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class WebhookServer:
    def __init__(
        self,
        *,
        fail_modes: set[str] | None = None,
        delay_s: float = 0.0,
        log_file: Path | None = None,
        port: int = 0,
    ) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_modes = fail_modes or set()
        self.delay_s = delay_s
        self.log_file = log_file
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["idempotency_key"] = self.headers.get("Idempotency-Key")
                srv.calls.append(body)
                if srv.log_file is not None:  # visible to a test in another process
                    with open(srv.log_file, "a") as fh:
                        fh.write(json.dumps(body) + "\n")
                if body["mode"] == "execute" and srv.delay_s:
                    time.sleep(srv.delay_s)
                ok = body["mode"] not in srv.fail_modes
                out = json.dumps(
                    {
                        "ok": ok,
                        "detail": f"{body['mode']} {body['action']}",
                        "previous": {"was": "before"},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def modes(self, mode: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["mode"] == mode]

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
