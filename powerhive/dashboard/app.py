"""The dashboard's web server: Python's `http.server` and Jinja2 templates, no JavaScript.

Every request reads the chain afresh through `powerhive.client` and `powerhive.views` (one
client library under the CLI and the dashboard) and renders a page on the server; forms
(a member's address) are plain GET forms. When the node does not answer, or the
deployments file is missing or from another chain, every page is a banner saying so (HTTP
503) and retries by itself; an unexpected error is one line on the page and one on stderr,
never a stack trace.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from web3.exceptions import Web3Exception

from oracle.errors import OracleError
from powerhive import units, views
from powerhive.ballots import VOTE_NAMES, open_ballots
from powerhive.client import Client
from powerhive.dashboard.chart import step_chart
from powerhive.errors import AmountError, NetworkError, PowerhiveError

log = logging.getLogger("powerhive.dashboard")

PAGES = [
    ("/", "Network"),
    ("/market", "Market"),
    ("/member", "Member"),
    ("/council", "Council"),
    ("/banker", "Banker"),
    ("/hives", "Hives"),
    ("/bridge", "Bridge"),
]
RETRY_S = 10  # a page showing the chain-down banner reloads itself this often
_CHAIN_DOWN = (NetworkError, OracleError, requests.RequestException, OSError, Web3Exception)


class BadInput(PowerhiveError):
    """A query parameter the page cannot use (HTTP 400)."""


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(ts)))


def _signed_kwh(base: int) -> str:
    text = units.format_kwh(base)
    return text if base < 0 else "+" + text if base > 0 else text


def _wad(value: int) -> str:
    """A signed wad as a plain decimal (R per kWh, rates)."""
    return units.format_units(value, units.WAD_DECIMALS)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("powerhive.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        kwh=units.format_kwh,
        signed_kwh=_signed_kwh,
        wh=units.format_wh,
        eur=units.format_eur,
        price=units.format_price,
        fraction=units.format_fraction,
        wad=_wad,
        duration=units.format_duration,
        when=_when,
        hvt=units.format_hvt,
        units=units.format_units,
    )
    env.globals.update(pages=PAGES, vote_names=VOTE_NAMES, retry_s=RETRY_S)
    return env


@dataclass
class Page:
    status: int
    html: str


class Dashboard:
    """The pages of one chain: `render(path, query) -> Page`."""

    def __init__(
        self, rpc: str, deployments_dir: Path, chain_id: int | None = None, timeout: float = 5.0
    ):
        self.rpc, self.deployments_dir = rpc, Path(deployments_dir)
        self.chain_id, self.timeout = chain_id, timeout
        self.env = _environment()
        self.routes = {
            "/": self.network,
            "/market": self.market,
            "/member": self.member,
            "/council": self.council,
            "/banker": self.banker,
            "/hives": self.hives,
            "/bridge": self.bridge,
        }

    def render(self, path: str, query: dict[str, str]) -> Page:
        page = self.routes.get(path)
        base = {"path": path, "rpc": self.rpc, "query": query}
        if page is None:
            return self._html(HTTPStatus.NOT_FOUND, "message.html", base, title="Not found")
        try:
            client = Client.connect(
                self.rpc, self.deployments_dir, self.chain_id, timeout=self.timeout
            )
            template, context = page(client, query)
            net = views.network(client) if path != "/" else context["net"]
            return self._html(HTTPStatus.OK, template, base | context, net=net, client=client)
        except BadInput as exc:
            return self._html(
                HTTPStatus.BAD_REQUEST, "message.html", base, title="Bad input", error=str(exc)
            )
        except _CHAIN_DOWN as exc:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            headline = (
                "The deployment cannot be read."
                if isinstance(exc, OracleError)
                else "The chain is not available."
            )
            return self._html(
                HTTPStatus.SERVICE_UNAVAILABLE, "down.html", base, reason=reason, headline=headline
            )
        except PowerhiveError as exc:  # a view the contract refused (TransactionFailed)
            return self._html(
                HTTPStatus.BAD_GATEWAY, "message.html", base, title="The chain refused a read",
                error=str(exc),
            )  # fmt: skip
        except Exception as exc:  # the promise: one line, never a stack trace
            text = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            log.error("%s %s", path, text)
            return self._html(
                HTTPStatus.INTERNAL_SERVER_ERROR, "message.html", base, title="Error", error=text
            )

    def _html(self, status: int, template: str, context: dict, **extra) -> Page:
        return Page(int(status), self.env.get_template(template).render(context | extra))

    # -- pages ----------------------------------------------------------------------------

    def network(self, client: Client, query):
        net = views.network(client)
        history = views.cost_history(client)
        d_chart = step_chart(
            [(p.timestamp, p.imbalance) for p in history.points],
            until=net.timestamp,
            title="D, the imbalance (kWh)",
            label=units.format_kwh,
            scale=units.ONE_ENT,
            css_class="chart-d",
        )
        r_chart = step_chart(
            [(p.timestamp, p.cost) for p in history.points],
            until=net.timestamp,
            title="R, the imbalance cost (per kWh)",
            label=_wad,
            scale=units.WAD // 100,
            css_class="chart-r",
        )
        return "network.html", {
            "net": net,
            "storage": views.storage_units(client),
            "history": history.points[::-1][:12],
            "changes": history,
            "d_chart": d_chart,
            "r_chart": r_chart,
        }

    def market(self, client: Client, query):
        return "market.html", {"books": views.books(client)}

    def member(self, client: Client, query):
        address = query.get("address", "").strip()
        if not address:
            return "member.html", {"who": None, "address": ""}
        try:
            who = views.member(client, address)
        except AmountError as exc:
            raise BadInput(str(exc)) from None
        return "member.html", {"who": who, "address": address}

    def council(self, client: Client, query):
        council = client.contract("Council")
        return "council.html", {
            "voters": client.call(council.functions.voters()),
            "lifetime": client.call(council.functions.ballot_lifetime()),
            "ballots": open_ballots(client),
            "passed": views.passed_ballots(client),
        }

    def banker(self, client: Client, query):
        queue = views.redemption_queue(client)
        return "banker.html", {"queue": queue, "total": sum(v for _, v in queue)}

    def hives(self, client: Client, query):
        return "hives.html", {"hives": views.hives(client)}

    def bridge(self, client: Client, query):
        return "bridge.html", {"bridge": views.bridge(client)}


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard  # set on the subclass by `serve`

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        page = self.dashboard.render(url.path.rstrip("/") or "/", query)
        body = page.html.encode()
        self.send_response(page.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        log.info("%s %s", self.address_string(), format % args)


def make_server(dashboard: Dashboard, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"dashboard": dashboard})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(dashboard: Dashboard, host: str, port: int) -> None:
    """Serve until interrupted; prints the address first (tests wait for that line)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    server = make_server(dashboard, host, port)
    bound = server.server_address[1]
    print(f"dashboard on http://{host}:{bound}/ reading {dashboard.rpc}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
