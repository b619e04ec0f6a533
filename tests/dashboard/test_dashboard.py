"""The dashboard in a real browser: Debian's chromium driven by playwright (no browser
download), the `powerhive dashboard` process on a free port, the protocol on Ape's Anvil.

Every page is loaded and its numbers are checked against the contracts (read through Ape,
not through the dashboard's own client), and the chain is taken away and brought back
behind a JSON-RPC forwarder: the pages show a banner (HTTP 503, no stack trace) and then the
numbers again. Screenshots go to out/screenshots/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright import sync_api as playwright_api

from powerhive import units
from scripts._bridge_deploy import deploy_bridge
from scripts._protocol import deploy_protocol, governed, save_protocol

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
PERIOD = 900
HVT = 10**18


class Forwarder:
    """127.0.0.1:port -> the node: JSON-RPC passed through while up, the port closed while
    down (what a stopped node looks like to a client)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.pruned_below = 0  # eth_call at an older block: "missing trie node" (geth's error)

    def up(self) -> None:
        upstream, fwd = self.upstream, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                call = json.loads(body)
                if _refused(call, fwd.pruned_below):
                    error = {"code": -32000, "message": "missing trie node"}
                    reply = {"jsonrpc": "2.0", "id": call["id"], "error": error}
                    self.reply(200, json.dumps(reply).encode())
                    return
                reply = requests.post(
                    upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                self.reply(reply.status_code, reply.content)

            def reply(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _refused(call, pruned_below: int) -> bool:
    """An `eth_call` at a block older than `pruned_below` (0: none refused)."""
    if not pruned_below or not isinstance(call, dict) or call.get("method") != "eth_call":
        return False
    at = call["params"][1] if len(call["params"]) > 1 else "latest"
    return at not in ("latest", "pending") and int(at, 16) < pruned_below


@pytest.fixture(scope="module")
def world(accounts, chain, project, tmp_path_factory):
    """The protocol with something on every page: a unit with energy and lost energy (D and
    R moved), a session, a trade and a resting order, a redemption, a passed and an open
    ballot, a hive with its market, the bridge."""
    root = tmp_path_factory.mktemp("dashboard")
    deployer, banker, alice, bob = accounts[0], accounts[1], accounts[2], accounts[3]
    unit, owner, voter2, hive_owner, meter, queen = (accounts[i] for i in (8, 10, 13, 4, 5, 6))
    p = deploy_protocol(deployer)
    deploy_bridge(p)
    save_protocol(p, "ethereum:local:foundry", force=True, directory=root / "deployments")
    ledger, eeuro, book, keeper = p.EnergyLedger, p.EEuro, p.OrderBook, p.Beekeeper
    governed(p, [deployer], ledger, "register_storage_unit", unit, owner)
    governed(p, [deployer], eeuro, "set_banker", banker)
    # Energy: 12.5 kWh stored, 0.5 kWh found lost (D > 0, R rises), 2 kWh more, 0.3 lost.
    ledger.energy_produced(alice, 12_500, 1, sender=unit)
    ledger.report_actual_energy(12_000, 2, sender=unit)
    ledger.energy_produced(alice, 2_000, 3, sender=unit)
    ledger.report_actual_energy(13_700, 4, sender=unit)
    ledger.start_session(unit, 10**18, sender=alice)
    # A trade (bob takes 1 kWh of alice's 2 at 0.21 EUR/kWh) and a resting ask.
    eeuro.mint(bob, 5 * units.ONE_EEURO, sender=banker)
    ledger.approve(book, 2 * 10**18, sender=alice)
    eeuro.approve(book, units.ONE_EEURO, sender=bob)
    book.place(False, 210_000, 2 * 10**18, False, 0, sender=alice)
    book.place(True, 250_000, 10**18, False, 0, sender=bob)
    eeuro.lock(500_000, sender=bob)
    # A second stablecoin (18 decimals) and its book: two asks of alice, bob's buy of 1.5 kWh
    # at 0.300 USD/kWh against the better one, and a resting bid of bob.
    usd = deployer.deploy(project.MockToken, "USD", 18)
    governed(p, [deployer], keeper, "add_stablecoin", usd, "USD")
    governed(p, [deployer], keeper, "create_book", usd, 10**15, 10**15, 10**16)
    usd_book = project.OrderBook.at(keeper.book_of(usd))
    usd.mint(bob, 10 * 10**18, sender=deployer)
    ledger.approve(usd_book, 4 * 10**18, sender=alice)
    usd.approve(usd_book, 10 * 10**18, sender=bob)
    usd_book.place(False, 3 * 10**17, 3 * 10**18, False, 0, sender=alice)
    usd_book.place(False, 32 * 10**16, 10**18, False, 0, sender=alice)
    usd_trade = usd_book.place(True, 31 * 10**16, 15 * 10**17, False, 0, sender=bob)
    usd_book.place(True, 25 * 10**16, 5 * 10**17, False, 0, sender=bob)
    # A hive of one meter with its market.
    governed(p, [deployer], keeper, "add_meter", meter, hive_owner, "SN-1", "Acme")
    p.HiveToken.transfer(hive_owner, 2_000 * HVT, sender=deployer)
    p.HiveToken.approve(keeper, 2_000 * HVT, sender=hive_owner)
    keeper.create_hive(eeuro, [meter], sender=hive_owner)
    p.HiveMarket.open_market(1, PERIOD, queen, sender=hive_owner)
    # A ballot left open: two voters now, one YES.
    governed(p, [deployer], p.Council, "add_voter", voter2)
    p.Council.vote(eeuro, eeuro.set_banker.encode_input(accounts[7]), sender=deployer)
    return dict(
        p=p, root=root, a=accounts, alice=alice, bob=bob, unit=unit, chain=chain,
        usd=usd, usd_book=usd_book, usd_trade=usd_trade,
    )  # fmt: skip


@pytest.fixture(scope="module")
def forwarder(chain):
    fwd = Forwarder(chain.provider.uri)
    fwd.up()
    yield fwd
    fwd.down()


@pytest.fixture(scope="module")
def dashboard(world, forwarder):
    """`powerhive dashboard` on a free port (the port it printed), stopped after."""
    script = Path(sys.executable).with_name("powerhive")
    log = (world["root"] / "dashboard.log").open("w")
    cmd = [str(script), "--rpc", forwarder.url, "--deployments", str(world["root"] / "deployments")]
    proc = subprocess.Popen(
        [*cmd, "dashboard", "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True
    )
    try:
        line = proc.stdout.readline()  # blocks until the server listens (or exits)
        assert line.startswith("dashboard on http://"), (line, proc.poll())
        yield line.split()[2].rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: `make browser` installs it (apt)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1200, "height": 900})
    yield pg
    pg.close()


def visit(page, url: str, shot: str, status: int = 200):
    response = page.goto(url)
    assert response.status == status, (url, response.status, page.inner_text("main"))
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    text = page.inner_text("body")
    assert "Traceback" not in text and "unexpected" not in text, text
    return text


def text_of(page, selector: str) -> str:
    return " ".join(page.inner_text(selector).split())


def test_every_page_shows_the_chain(world, dashboard, page):
    p, alice, bob, unit = world["p"], world["alice"], world["bob"], world["unit"]
    ledger, eeuro, council = p.EnergyLedger, p.EEuro, p.Council
    kwh, eur = units.format_kwh, units.format_eur

    # The network: every card against the ledger, D and R charted and tabled.
    visit(page, dashboard + "/", "network")
    d = ledger.imbalance()
    assert d > 0 and ledger.cost() > 0  # energy was found lost: D and R moved
    assert text_of(page, "#energy") == f"{units.format_wh(ledger.network_energy_wh())} kWh"
    assert text_of(page, "#energy") == "13.700 kWh"
    assert text_of(page, "#ent-supply") == f"{kwh(ledger.totalSupply())} kWh"
    assert text_of(page, "#ent-escrow") == f"{kwh(ledger.total_escrow())} kWh" == "1.000 kWh"
    assert text_of(page, "#imbalance") == f"+{kwh(d)} kWh"
    assert text_of(page, "#cost") == f"{units.format_units(ledger.cost(), 18)} / kWh"
    assert text_of(page, "#storage-fee") == "0.2 (20%)"
    # Four blocks with a report (two productions, two actual readings): D and R at each.
    assert text_of(page, "#changes").startswith(
        "D and R at the end of each block with a report: 4 blocks since the ledger's "
        "deployment, the last 4 charted; the latest:"
    )
    rows = [r.split("\t") for r in page.locator("#history tr").all_inner_texts()[1:]]
    assert len(rows) == 4 and rows[0][2:] == [f"+{kwh(d)}", units.format_units(ledger.cost(), 18)]
    for block, _when, shown_d, shown_r in rows:
        past_d = ledger.imbalance(block_id=int(block))
        assert shown_d == (f"+{kwh(past_d)}" if past_d > 0 else kwh(past_d))
        assert shown_r == units.format_units(ledger.cost(block_id=int(block)), 18)
    for chart in ("svg.chart-d", "svg.chart-r"):
        assert page.locator(f"{chart} polyline").count() == 1
    row = text_of(page, f'#units tr[data-unit="{unit.address}"]')
    info = ledger.unit_info(unit)
    assert f"active {units.format_wh(info.available_wh)} {units.format_wh(info.locked_wh)}" in row
    assert f"#{info.last_seq}" in row

    # The market: every book. ENT / eEuro: one ask of 1 kWh left at 0.210, the trade of 1 kWh
    # at 0.210 for 0.21 EUR. ENT / USD (the Beekeeper's second book): depth and trade as the
    # book has them.
    visit(page, dashboard + "/market", "market")
    depth = page.locator("#depth-EUR tr.ask").all_inner_texts()
    assert [r.split("\t") for r in depth] == [["ask", "0.210", "1.000", "1"]]
    assert page.locator("#depth-EUR tr.bid").count() == len(p.OrderBook.depth(True, 0, 0)[0]) == 0
    (trade,) = page.locator("#trades-EUR tr").all_inner_texts()[1:]
    cells = trade.split("\t")
    assert cells[2:8] == ["buys", "0.210", "1.000", "0.21", alice.address, bob.address]
    usd_book = world["usd_book"]
    price = lambda v: units.format_price(v, quote_decimals=18)  # noqa: E731
    asks, bids = usd_book.depth(False, 0, 0)[0], usd_book.depth(True, 0, 0)[0]
    listed = [r.split("\t") for r in page.locator("#books tr").all_inner_texts()[1:]]
    assert [r[:3] for r in listed] == [
        ["ENT / EUR", eeuro.address, p.OrderBook.address],
        ["ENT / USD", world["usd"].address, usd_book.address],
    ]
    assert listed[1][3:] == [price(bids[0].price), price(asks[0].price), "1"]
    shown = [r.split("\t") for r in page.locator("#depth-USD tr.ask").all_inner_texts()]
    assert shown == [["ask", price(lv.price), kwh(lv.amount), str(lv.orders)] for lv in asks[::-1]]
    assert shown == [["ask", "0.320", "1.000", "1"], ["ask", "0.300", "1.500", "1"]]
    shown = [r.split("\t") for r in page.locator("#depth-USD tr.bid").all_inner_texts()]
    assert shown == [["bid", price(lv.price), kwh(lv.amount), str(lv.orders)] for lv in bids]
    assert shown == [["bid", "0.250", "0.500", "1"]]
    (traded,) = [e for e in world["usd_trade"].events if e.event_name == "Traded"]
    (trade,) = page.locator("#trades-USD tr").all_inner_texts()[1:]
    value = units.format_units(traded.amount * traded.price // 10**18, 18, min_places=2)
    assert trade.split("\t")[2:8] == [
        "buys", price(traded.price), kwh(traded.amount), value, alice.address, bob.address,
    ]  # fmt: skip
    assert value == "0.45"

    # A member: balances, the session and the resting order of alice; bob's eEuro.
    visit(page, f"{dashboard}/member?address={alice.address}", "member")
    assert text_of(page, "#ent") == f"{kwh(ledger.balanceOf(alice))} kWh"
    assert text_of(page, "#escrow") == "1.000 kWh"
    session = ledger.session(alice, unit)
    (srow,) = page.locator("#sessions tr").all_inner_texts()[1:]
    assert srow.split("\t")[:3] == [
        unit.address,
        kwh(session.escrow),
        units.format_wh(session.reserved_wh),
    ]
    (orow,) = page.locator("#orders tr").all_inner_texts()[1:]
    oid = p.OrderBook.open_orders(alice, 0, 0)[0][0].order_id
    assert orow.split("\t") == [hex(oid), "ask", "0.210", "1.000"]
    visit(page, f"{dashboard}/member?address={bob.address}", "member-bob")
    assert text_of(page, "#eeuro") == f"{eur(eeuro.balanceOf(bob))} EUR" == "4.29 EUR"
    assert text_of(page, "#locked") == "0.50 EUR"
    # A bad address: a 400 page with one line, not a stack trace.
    visit(page, f"{dashboard}/member?address=0x123", "member-bad", status=400)
    assert "not an Ethereum address" in text_of(page, "#error")

    # The Council: two voters, the open ballot decoded, the passed ones decoded.
    visit(page, dashboard + "/council", "council")
    assert page.locator("#voters tr").count() == len(council.voters()) == 2
    (ballot,) = page.locator("#ballots tr").all_inner_texts()[1:]
    assert f"EEuro.set_banker(new_banker={world['a'][7].address})" in ballot
    assert "YES 1 / NO 0 of 2" in ballot
    passed = text_of(page, "#passed")
    assert f"Council.add_voter(voter={world['a'][13].address})" in passed
    assert f"EnergyLedger.register_storage_unit(unit={unit.address}" in passed

    # The banker: bob's 0.50 EUR waiting.
    visit(page, dashboard + "/banker", "banker")
    assert text_of(page, "#banker") == eeuro.banker()
    assert page.locator("#queue tr").all_inner_texts()[1].split("\t") == [bob.address, "0.50"]
    assert text_of(page, "#queue-total") == eur(eeuro.total_locked()) == "0.50"

    # Hives and the bridge.
    visit(page, dashboard + "/hives", "hives")
    info = p.Beekeeper.hive_info(1)
    assert text_of(page, "#hive-count").startswith(f"{p.Beekeeper.hive_count()} hive ")
    (hrow,) = page.locator("#hives tr").all_inner_texts()[1:]
    assert hrow.split("\t")[:6] == [
        "#1",
        info.owner,
        "EUR",
        units.format_hvt(info.staked),
        "active",
        "1",
    ]
    market = p.HiveMarket.market(1)
    assert (
        f"periods of 15m since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(market.start))}"
        in hrow
    )
    assert f"next period {market.next_period}, 0 workers, deposit 0 EUR" in hrow
    visit(page, dashboard + "/bridge", "bridge")
    assert text_of(page, "#peer-chain") == "none"
    assert page.locator("#bridge-tokens tr").count() == 3


def test_chain_down_banner_then_back(world, dashboard, forwarder, page):
    forwarder.down()
    try:
        for path in ("/", "/market", f"/member?address={world['alice'].address}", "/council"):
            visit(page, dashboard + path, "chain-down" if path == "/" else "down", status=503)
            banner = text_of(page, "#chain-down")
            assert banner.startswith("The chain is not available. cannot reach the node at")
            assert page.locator("#energy").count() == 0
    finally:
        forwarder.up()
    visit(page, dashboard + "/", "chain-back")
    energy = world["p"].EnergyLedger.network_energy_wh()
    assert text_of(page, "#energy") == f"{units.format_wh(energy)} kWh"


def test_history_on_a_node_without_old_state(world, dashboard, forwarder, page):
    """A non-archive node refuses calls at old blocks: those points come from CostChanged."""
    ledger = world["p"].EnergyLedger
    rows = [r.split("\t") for r in _history(page, dashboard)]
    blocks = [int(r[0]) for r in rows]  # newest first, 4 blocks
    forwarder.pruned_below = blocks[0]  # only the newest block's state is kept
    try:
        pruned = _history(page, dashboard, "history-pruned")
    finally:
        forwarder.pruned_below = 0
    assert "(1 of them from CostChanged events: the node no longer keeps their state)" in (
        text_of(page, "#changes")
    )
    # The newest from the state, then the CostChanged events before it (R changed twice, at
    # the two actual readings; the newest block is the second of them).
    changed = ledger.CostChanged.query("*", start_block=world["p"].deploy_block)
    assert len(changed) == 2 and int(changed.block_number.iloc[1]) == blocks[0]
    assert [int(r.split("\t")[0]) for r in pruned] == [blocks[0], int(changed.block_number.iloc[0])]
    assert (
        pruned[1].split("\t")[2]
        == f"+{units.format_kwh(int(changed.event_arguments.iloc[0]['imbalance']))}"
    )


def _history(page, dashboard, shot="history"):
    visit(page, dashboard + "/", shot)
    return page.locator("#history tr").all_inner_texts()[1:]


def test_missing_deployment_is_a_banner(forwarder, tmp_path):
    """A deployments directory without this chain's file: a banner naming the file."""
    from powerhive.dashboard.app import Dashboard

    page = Dashboard(forwarder.url, tmp_path).render("/market", {})
    assert page.status == 503 and 'id="chain-down"' in page.html
    assert "The deployment cannot be read." in page.html
    assert str(tmp_path / "31337.json") in page.html and "Traceback" not in page.html


def test_port_taken_is_one_line(world, dashboard, forwarder):
    port = dashboard.rsplit(":", 1)[1]
    script = Path(sys.executable).with_name("powerhive")
    deployments = str(world["root"] / "deployments")
    cmd = [str(script), "--rpc", forwarder.url, "--deployments", deployments, "dashboard"]
    done = subprocess.run([*cmd, "--port", port], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
