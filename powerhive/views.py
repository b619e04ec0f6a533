"""What the chain holds, read into plain records: one reader for the CLI and the dashboard.

Each function takes a connected `powerhive.client.Client` and returns dataclasses of base
units (ENT base units, Wh, eEuro base units, wads); formatting is `powerhive.units`' job, so
the CLI's lines and the dashboard's pages show the same numbers. Lists the chain does not
keep (storage units, a consumer's sessions, holders with locked eEuro, trades, the history
of `D` and `R`) are rebuilt from the contracts' events since their deployment blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3.exceptions import BadFunctionCallOutput, Web3RPCError

from powerhive.actions import Decimals, chain_lookup
from powerhive.ballots import address_namer, decode_call
from powerhive.client import Client, checksum
from powerhive.market import Level, collect_pages

MAX_ESCROW_UNITS = 64  # EnergyLedger.MAX_BATCH: units per escrow_of call


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def timestamps(client: Client, blocks) -> dict[int, int]:
    """Block number -> its timestamp, one request per distinct block."""
    return {n: int(client.w3.eth.get_block(n)["timestamp"]) for n in sorted(set(blocks))}


# -- the network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    mint_per_kwh: int  # wad: ENT minted per kWh stored
    burn_per_kwh: int  # wad: ENT burned per kWh consumed
    mint_cost: int  # signed wad
    burn_cost: int  # signed wad


@dataclass(frozen=True)
class Params:
    max_mint_cost: int  # M, wad
    max_burn_cost: int  # B, wad
    recovery_share: int  # C, wad
    storage_fee: int  # F, wad
    session_lifetime: int  # H, seconds


@dataclass(frozen=True)
class Network:
    chain_id: int
    block: int
    timestamp: int
    energy_wh: int  # KWH: energy stored in all active units
    ent_supply: int  # ENT in circulation (totalSupply)
    escrow: int  # ENT escrowed by open sessions
    imbalance: int  # D = supply + escrow - KWH, ENT base units (signed)
    cost: int  # R, wad per kWh
    rates: Rates
    params: Params
    eeuro_supply: int
    eeuro_locked: int  # locked for redemption, all holders
    banker: str


def network(client: Client) -> Network:
    ledger, eeuro = client.contract("EnergyLedger"), client.contract("EEuro")
    block = client.w3.eth.get_block("latest")
    return Network(
        chain_id=client.chain_id,
        block=int(block["number"]),
        timestamp=int(block["timestamp"]),
        energy_wh=client.call(ledger.functions.network_energy_wh()),
        ent_supply=client.call(ledger.functions.totalSupply()),
        escrow=client.call(ledger.functions.total_escrow()),
        imbalance=client.call(ledger.functions.imbalance()),
        cost=client.call(ledger.functions.cost()),
        rates=Rates(*client.call(ledger.functions.rates())),
        params=Params(*client.call(ledger.functions.params())),
        eeuro_supply=client.call(eeuro.functions.totalSupply()),
        eeuro_locked=client.call(eeuro.functions.total_locked()),
        banker=client.call(eeuro.functions.banker()),
    )


@dataclass(frozen=True)
class CostPoint:
    block: int
    timestamp: int
    imbalance: int  # D at the end of the block, ENT base units
    cost: int  # R at the end of the block, wad


# The ledger's events of every change of D (supply + escrow - KWH) or R.
D_EVENTS = [
    "EnergyProduced",
    "EnergyConsumed",
    "ActualEnergyReported",
    "UnitRemoved",
    "CostChanged",
]


@dataclass
class CostHistory:
    points: list[CostPoint]  # oldest first
    blocks: int  # blocks with a change since the ledger's deployment
    sampled: int  # of them, read from the node's state at that block (the rest: CostChanged)


def cost_history(client: Client, *, limit: int = 120) -> CostHistory:
    """`D` and `R` at the end of each block where a report could have moved them, the last
    `limit` such blocks, read with `imbalance()` / `cost()` at that block. A node that no
    longer keeps the state of older blocks (not an archive node) answers them with an error:
    from there back, the ledger's `CostChanged` events (D and R when R changed) fill in."""
    ledger = client.contract("EnergyLedger")
    blocks = client.blocks_with("EnergyLedger", D_EVENTS)
    sampled: list[tuple[int, int, int]] = []
    for n in reversed(blocks[-limit:]):
        try:
            d = ledger.functions.imbalance().call(block_identifier=n)
            r = ledger.functions.cost().call(block_identifier=n)
        except (Web3RPCError, BadFunctionCallOutput):
            break  # the node pruned this block's state, and so every older one's
        sampled.append((n, int(d), int(r)))
    sampled.reverse()
    older: list[tuple[int, int, int]] = []
    if len(sampled) < min(limit, len(blocks)):
        oldest = sampled[0][0] if sampled else None
        older = [
            (log["blockNumber"], int(log["args"]["imbalance"]), int(log["args"]["cost"]))
            for log in client.events("EnergyLedger", "CostChanged")
            if oldest is None or log["blockNumber"] < oldest
        ][-(limit - len(sampled)) :]
    rows = older + sampled
    when = timestamps(client, [n for n, _, _ in rows])
    points = [CostPoint(n, when[n], d, r) for n, d, r in rows]
    return CostHistory(points, blocks=len(blocks), sampled=len(sampled))


@dataclass(frozen=True)
class StorageUnit:
    address: str
    owner: str
    active: bool
    available_wh: int
    locked_wh: int  # reserved by sessions
    last_seq: int
    max_report_wh: int


def storage_units(client: Client) -> list[StorageUnit]:
    """Every unit ever registered (removed ones show as inactive), in registration order."""
    ledger = client.contract("EnergyLedger")
    seen = dict.fromkeys(
        log["args"]["unit"] for log in client.events("EnergyLedger", "UnitRegistered")
    )
    found = []
    for unit in seen:
        owner, active, available, locked, seq, cap = client.call(ledger.functions.unit_info(unit))
        found.append(StorageUnit(unit, owner, active, available, locked, seq, cap))
    return found


# -- members --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    unit: str
    escrow: int  # ENT base units left in escrow
    reserved_wh: int
    expires_at: int
    expired: bool  # ended (closed early or run out): billing its grace, then settleable
    grace_ends_at: int


@dataclass(frozen=True)
class OpenOrder:
    order_id: int
    is_buy: bool
    price: int
    amount: int


@dataclass
class Member:
    address: str
    ent: int
    eeuro: int
    locked: int  # eEuro locked for redemption
    escrow: int  # ENT in the sessions below
    sessions: list[Session] = field(default_factory=list)
    orders: list[OpenOrder] = field(default_factory=list)


def session_units(client: Client, consumer: str) -> list[str]:
    """The units `consumer` ever started a session with (the chain does not list them)."""
    logs = client.events("EnergyLedger", "SessionStarted", {"consumer": consumer})
    return list(dict.fromkeys(log["args"]["unit"] for log in logs))


def escrow_of(client: Client, consumer: str, units: list[str]) -> int:
    ledger = client.contract("EnergyLedger")
    return sum(
        client.call(ledger.functions.escrow_of(consumer, units[i : i + MAX_ESCROW_UNITS]))
        for i in range(0, len(units), MAX_ESCROW_UNITS)
    )


def open_orders(client: Client, owner: str, book=None) -> list[OpenOrder]:
    book = book or client.contract("OrderBook")
    found = collect_pages(lambda c: client.call(book.functions.open_orders(owner, c, 0)))
    return [OpenOrder(*o) for o in found]


def member(client: Client, address: str, book=None) -> Member:
    """Balances, open sessions and open orders of one account."""
    who = checksum(address)
    ledger, eeuro = client.contract("EnergyLedger"), client.contract("EEuro")
    units = session_units(client, who)
    sessions = []
    for unit in units:
        escrow, reserved, expires_at, is_open, expired, grace = client.call(
            ledger.functions.session(who, unit)
        )
        if is_open:
            sessions.append(Session(unit, escrow, reserved, expires_at, expired, grace))
    return Member(
        address=who,
        ent=client.call(ledger.functions.balanceOf(who)),
        eeuro=client.call(eeuro.functions.balanceOf(who)),
        locked=client.call(eeuro.functions.locked(who)),
        escrow=escrow_of(client, who, units),
        sessions=sessions,
        orders=open_orders(client, who, book),
    )


def redemption_queue(client: Client) -> list[tuple[str, int]]:
    """(holder, eEuro locked) for every holder with eEuro awaiting the banker."""
    eeuro = client.contract("EEuro")
    holders = dict.fromkeys(log["args"]["account"] for log in client.events("EEuro", "FundsLocked"))
    queue = []
    for holder in holders:
        locked = client.call(eeuro.functions.locked(holder))
        if locked:
            queue.append((holder, locked))
    return queue


# -- the order book -------------------------------------------------------------------------


def levels(client: Client, book, is_buy: bool) -> list[Level]:
    """One side of a book's depth, best price first."""
    raw = collect_pages(lambda c: client.call(book.functions.depth(is_buy, c, 0)))
    return [Level(*lv) for lv in raw]


@dataclass(frozen=True)
class Trade:
    block: int
    timestamp: int
    tx_hash: str
    maker: str
    taker: str
    taker_buys: bool
    price: int
    amount: int


def recent_trades(client: Client, book=None, *, since: int | None = None, limit: int = 20):
    """The last `limit` trades of a book (default: the deployment's OrderBook; `since` its
    first block), newest first. A taker's order id carries its side (`tag << 56` with
    `tag = seq << 1 | is_buy`, contracts/interfaces/IOrderBook.vyi)."""
    if book is None:
        logs = client.events("OrderBook", "Traded")
    else:
        logs = client.logs(book, "Traded", since or 0)
    logs = logs[-limit:][::-1]
    when = timestamps(client, [log["blockNumber"] for log in logs])
    return [
        Trade(
            block=log["blockNumber"],
            timestamp=when[log["blockNumber"]],
            tx_hash=_hex(log["transactionHash"]),
            maker=log["args"]["maker"],
            taker=log["args"]["taker"],
            taker_buys=bool((int(log["args"]["taker_order_id"]) >> 56) & 1),
            price=int(log["args"]["price"]),
            amount=int(log["args"]["amount"]),
        )
        for log in logs
    ]


@dataclass(frozen=True)
class Book:
    """One ENT / stablecoin order book: its coin, rules, depth and recent trades."""

    address: str
    coin: str
    code: str  # the Beekeeper's code of the coin (EUR)
    decimals: int  # the coin's: prices in coin per kWh, values in coin
    tick: int
    lot: int
    min_size: int
    asks: list[Level]
    bids: list[Level]
    trades: list[Trade]


def books(client: Client) -> list[Book]:
    """Every order book: the deployment's OrderBook (ENT / eEuro) first, then each other book
    the Beekeeper created (`BookCreated`, one per listed stablecoin), in creation order."""
    found: dict[str, tuple[str, int]] = {}  # book -> (coin, first block)
    if client.has("OrderBook"):
        main = client.contract("OrderBook")
        found[main.address] = (client.call(main.functions.QUOTE()), None)
    if client.has("Beekeeper"):
        for log in client.events("Beekeeper", "BookCreated"):
            book = checksum(log["args"]["book"])
            found.setdefault(book, (checksum(log["args"]["stablecoin"]), log["blockNumber"]))
    decimals_of = Decimals(client.deployment, lookup=chain_lookup(client)).of_token
    keeper = client.contract("Beekeeper") if client.has("Beekeeper") else None
    shown = []
    for address, (coin, since) in found.items():
        handle = client.at(address, "OrderBook")
        code = client.call(keeper.functions.stablecoin_info(coin))[2] if keeper else ""
        shown.append(
            Book(
                address=address,
                coin=coin,
                code=code or (client.name_of(coin) or coin),
                decimals=decimals_of(coin),
                tick=client.call(handle.functions.tick_size()),
                lot=client.call(handle.functions.lot_size()),
                min_size=client.call(handle.functions.min_size()),
                asks=levels(client, handle, False),
                bids=levels(client, handle, True),
                trades=recent_trades(client, None if since is None else handle, since=since),
            )
        )
    return shown


# -- the Council ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PassedBallot:
    block: int
    timestamp: int
    key: str
    description: str  # the decoded action (powerhive.ballots)
    yes: int
    voters: int


def passed_ballots(client: Client, *, limit: int = 20) -> list[PassedBallot]:
    """The last `limit` ballots that passed (and executed), newest first, decoded."""
    passed = client.events("Council", "BallotPassed")[-limit:][::-1]
    if not passed:
        return []
    data_of = {
        _hex(log["args"]["key"]): (log["args"]["target"], bytes(log["args"]["data"]))
        for log in client.events("Council", "BallotOpened")
    }
    when = timestamps(client, [log["blockNumber"] for log in passed])
    names = address_namer(client.deployment)
    decimals = Decimals(client.deployment, lookup=chain_lookup(client))
    found = []
    for log in passed:
        key = _hex(log["args"]["key"])
        if key in data_of:
            target, data = data_of[key]
            text = decode_call(
                client.deployment, target, data, decimals=decimals, names=names
            ).describe()
        else:  # opened before the Council's deployment block: not in this deployment's logs
            text = f"{log['args']['target']}: calldata not found"
        found.append(
            PassedBallot(
                log["blockNumber"],
                when[log["blockNumber"]],
                key,
                text,
                int(log["args"]["yes"]),
                int(log["args"]["voters"]),
            )
        )
    return found


# -- hives and the bridge -------------------------------------------------------------------

HIVE_STATUS = {0: "unknown", 1: "active", 2: "frozen"}
MAX_HIVES_SHOWN = 100


@dataclass(frozen=True)
class HiveMarket:
    start: int
    period_seconds: int
    next_period: int
    decimals: int
    workers: int
    submitted: int
    open: bool  # a period's batches are being submitted
    queen: str
    deposit: int  # stablecoin base units


@dataclass(frozen=True)
class Hive:
    hive_id: int
    owner: str
    stablecoin: str
    coin_code: str
    staked: int  # HVT base units
    status: str
    meters: int
    start: int
    end: int
    market: HiveMarket | None  # None: no market opened for the hive (or no HiveMarket)


@dataclass
class Hives:
    count: int
    total_staked: int
    hives: list[Hive] = field(default_factory=list)


def hives(client: Client) -> Hives:
    """The Beekeeper's hives (the last `MAX_HIVES_SHOWN`) and their hive markets."""
    keeper = client.contract("Beekeeper")
    market = client.contract("HiveMarket") if client.has("HiveMarket") else None
    count = client.call(keeper.functions.hive_count())
    codes: dict[str, str] = {}
    found = []
    for hive_id in range(max(1, count - MAX_HIVES_SHOWN + 1), count + 1):
        owner, coin, staked, status, meters, start, end = client.call(
            keeper.functions.hive_info(hive_id)
        )
        if coin not in codes:
            codes[coin] = client.call(keeper.functions.stablecoin_info(coin))[2]
        view = None
        if market is not None:
            raw = HiveMarket(*client.call(market.functions.market(hive_id)))
            view = raw if raw.start else None
        found.append(
            Hive(
                hive_id,
                owner,
                coin,
                codes[coin],
                staked,
                HIVE_STATUS.get(status, str(status)),
                meters,
                start,
                end,
                view,
            )  # fmt: skip
        )
    return Hives(count, client.call(keeper.functions.total_staked()), found)


@dataclass(frozen=True)
class BridgeToken:
    name: str  # the deployment's record: EnergyLedger, EEuro
    address: str
    decimals: int
    listed: bool
    home: bool
    peer_token: str
    next_nonce: int
    pending: int  # transfers out still pending (the relayers' attestation)
    held: int  # a home token: locked in the bridge; a wrapped token: its supply minted here
    out_available: int
    out_capacity: int
    in_available: int
    in_capacity: int


@dataclass(frozen=True)
class BridgeTransfer:
    block: int
    timestamp: int
    token: str
    token_name: str  # the deployment's record, or the address
    decimals: int
    nonce: int
    sender: str
    recipient: str
    amount: int
    dest_chain: int
    status: str  # pending, completed (delivered on the peer chain) or refunded


@dataclass(frozen=True)
class BridgeArrival:
    """A transfer from the peer chain completed here (`TransferUnlocked`)."""

    block: int
    timestamp: int
    token_name: str
    decimals: int
    nonce: int
    recipient: str
    amount: int


@dataclass
class Bridge:
    address: str
    peer_chain: int
    peer_bridge: str
    paused: bool
    relayers: list[str]
    threshold: int
    tokens: list[BridgeToken] = field(default_factory=list)
    sent: list[BridgeTransfer] = field(default_factory=list)
    received: list[BridgeArrival] = field(default_factory=list)


BRIDGE_PAGE = 256  # Bridge.MAX_PAGE nonces per locked_transfers call


BRIDGED = ("EnergyLedger", "EEuro", "WrappedENT", "WrappedEEuro")


def bridge(client: Client, *, limit: int = 20) -> Bridge | None:
    """The bridge's settings, its tokens (home tokens locked, wrapped tokens minted), the last
    `limit` transfers sent with their status and the last `limit` completed here (None: the
    deployment has no bridge)."""
    if not client.has("Bridge"):
        return None
    b = client.contract("Bridge")
    decimals_of = Decimals(client.deployment, lookup=chain_lookup(client)).of_token
    tokens = []
    for name in BRIDGED:
        if not client.has(name):
            continue
        handle = client.contract(name)
        token = handle.address
        peer, home, listed = client.call(b.functions.token_info(token))
        nonce = client.call(b.functions.next_nonce(token))
        pending = 0
        for start in range(0, nonce, BRIDGE_PAGE):
            pending += len(client.call(b.functions.locked_transfers(token, start, BRIDGE_PAGE)))
        out_cap, _, _, out_now = client.call(b.functions.limit(token, 0))
        in_cap, _, _, in_now = client.call(b.functions.limit(token, 1))
        wrapped = name.startswith("Wrapped")
        held = client.call(
            handle.functions.totalSupply() if wrapped else handle.functions.balanceOf(b.address)
        )
        tokens.append(
            BridgeToken(
                name,
                token,
                decimals_of(token),
                listed,
                home,
                peer,
                nonce,
                pending,
                held,
                out_now,
                out_cap,
                in_now,
                in_cap,
            )  # fmt: skip
        )
    known = {t.address: (t.name, t.decimals) for t in tokens}

    def named(token: str) -> tuple[str, int]:
        return known.get(token) or (token, decimals_of(token))

    done = {bytes(log["args"]["id"]) for log in client.events("Bridge", "TransferCompleted")}
    refunded = {bytes(log["args"]["id"]) for log in client.events("Bridge", "TransferRefunded")}
    logs = client.events("Bridge", "TransferSent")[-limit:][::-1]
    arrivals = client.events("Bridge", "TransferUnlocked")[-limit:][::-1]
    when = timestamps(client, [log["blockNumber"] for log in logs + arrivals])

    def status(log) -> str:
        key = bytes(log["args"]["id"])
        return "completed" if key in done else "refunded" if key in refunded else "pending"

    sent = [
        BridgeTransfer(
            log["blockNumber"],
            when[log["blockNumber"]],
            log["args"]["token"],
            *named(log["args"]["token"]),
            int(log["args"]["nonce"]),
            log["args"]["sender"],
            log["args"]["recipient"],
            int(log["args"]["amount"]),
            int(log["args"]["dest_chain"]),
            status(log),
        )  # fmt: skip
        for log in logs
    ]
    received = [
        BridgeArrival(
            log["blockNumber"],
            when[log["blockNumber"]],
            *named(log["args"]["token"]),
            int(log["args"]["nonce"]),
            log["args"]["recipient"],
            int(log["args"]["amount"]),
        )
        for log in arrivals
    ]
    return Bridge(
        address=b.address,
        peer_chain=client.call(b.functions.peer_chain()),
        peer_bridge=client.call(b.functions.peer_bridge()),
        paused=client.call(b.functions.paused()),
        relayers=list(client.call(b.functions.relayers())),
        threshold=client.call(b.functions.threshold()),
        tokens=tokens,
        sent=sent,
        received=received,
    )
