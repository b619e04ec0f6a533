"""A JSON-RPC endpoint on 127.0.0.1 in front of a node (Anvil), for tests that need a node
which answers differently: a subclass overrides `answer` (one call, single or in a batch)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class RpcProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls = body if isinstance(body, list) else [body]
                answers = [proxy.answer(call) for call in calls]
                out = json.dumps(answers if isinstance(body, list) else answers[0]).encode()
                self.send_response(proxy.status(answers))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, call: dict) -> dict:
        return requests.post(self.upstream, json=call, timeout=10).json()

    def answer(self, call: dict) -> dict:
        return self.forward(call)

    def status(self, answers: list[dict]) -> int:
        """The HTTP status of the reply carrying `answers`."""
        return 200

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
