"""Prometheus metrics and the health endpoint, served on one small HTTP port.

`GET /metrics` is the Prometheus text format; `GET /health` is JSON, 200 when the service is
healthy (meters read recently, deliveries keep up) and 503 otherwise, with the reason.
Each service owns its registry: nothing is global.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("oracle.http")


class MetricSet:
    """A service's own registry and the counters and gauges it declares on it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Metrics(MetricSet):
    def __init__(self) -> None:
        super().__init__()
        c, g = self.counter, self.gauge
        self.readings = c("oracle_readings", "Meter readings recorded", "meter")
        self.reading_errors = c("oracle_reading_errors", "Meter reads that failed", "meter")
        self.anomalies = c(
            "oracle_anomalies",
            "Counter resets, rollovers, rejected jumps, clock steps",
            "meter",
            "kind",
        )
        self.reports = c("oracle_reports", "Ledger reports by outcome", "kind", "outcome")
        self.energy = c("oracle_energy_confirmed_wh", "Wh confirmed on chain", "kind")
        self.transactions = c(
            "oracle_transactions", "Transactions sent, by outcome", "method", "outcome"
        )
        self.gas = c("oracle_gas_used", "Gas used by mined transactions")
        self.outbox_depth = g("oracle_outbox_depth", "Reports waiting for confirmation")
        self.last_confirmation = g(
            "oracle_last_confirmation_timestamp_seconds", "Unix time of the last confirmed report"
        )
        self.last_reading = g(
            "oracle_last_reading_timestamp_seconds", "Unix time of the last reading", "meter"
        )
        self.chain_up = g("oracle_chain_up", "1 when the last chain call succeeded")
        self.on_chain_seq = g("oracle_last_seq", "The unit's last sequence number known on chain")
        # The ledger's OverConsumed events for this unit, seen in the service's own receipts.
        self.over_consumed = c(
            "oracle_over_consumed_wh",
            "Wh the ledger recorded as over-consumption (no session, or beyond its reserve)",
            "consumer",
        )
        self.over_consumptions = c(
            "oracle_over_consumptions",
            "Reports the ledger recorded with over-consumption",
            "consumer",
        )


# An extra route: (method, query string, request body) -> (status, JSON-serialisable body).
Route = Callable[[str, str, bytes], tuple[int, Any]]
MAX_BODY = 1 << 20


class HttpEndpoint:
    """`/metrics`, `/health` and any extra `routes` on a background thread; `port` 0 picks a
    free port."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Any,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        routes: dict[str, Route] | None = None,
        *,
        thread_name: str = "oracle-http",
    ):
        endpoint = self
        extra = dict(routes or {})

        class Handler(BaseHTTPRequestHandler):
            def _route(self, method: str) -> bool:
                path, _, query = self.path.partition("?")
                route = extra.get(path)
                if route is None:
                    return False
                body = b""
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(min(length, MAX_BODY))
                status, payload = route(method, query, body)
                data = json.dumps(payload, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if not self._route("POST"):
                    self.send_error(404)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self._route("GET"):
                    return
                if self.path.split("?")[0] == "/metrics":
                    body, status, ctype = metrics.exposition(), 200, CONTENT_TYPE_LATEST
                elif self.path.split("?")[0] in ("/health", "/healthz"):
                    healthy, detail = endpoint.health()
                    body = json.dumps(detail, default=str).encode()
                    status, ctype = (200 if healthy else 503), "application/json"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("http " + format % args)

        self.health = health
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=thread_name, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
