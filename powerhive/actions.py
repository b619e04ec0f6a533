"""Every governed call of the protocol, by name, with its arguments in human units.

One table (`ACTIONS`) serves both ways: `powerhive propose <action>` parses human arguments
into calldata with it, and `powerhive.ballots` formats the arguments of a ballot's calldata
with the same kinds, so what a voter proposes and what the next voter reads cannot disagree.
The table follows the governed functions of `contracts/Council.vy`, `EnergyLedger.vy`,
`EEuro.vy`, `OrderBook.vy`, `Beekeeper.vy` (`modules/beekeeper.vy`) and `Bridge.vy`.

Kinds of argument: `address`, `addresses` (comma separated), `banker` (an address, or `none`
to revoke), `kwh` (ENT), `wh` (ledger energy, given in kWh), `fraction` (wad: `0.2` or
`20%`), `seconds` (`900`, `15m`, `7d`), `hvt`, `tariff` (a hive tariff in coin per kWh, 4
decimals), `bps` (a fee as `0.5%`), `price` (a book's price in EUR/kWh, decimals
of the book's quote token), `amount:<arg>` (decimals of the token named by argument `<arg>`),
`direction` (`out` or `in`), `bool` (`on`/`off`), `int`, `text`; and in members' own calls
`meter_status` (`active` 1, `inactive` 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from oracle.deployments import Deployment
from powerhive import units
from powerhive.client import checksum, name_of
from powerhive.errors import ActionError, AmountError

ZERO = "0x0000000000000000000000000000000000000000"
# The Beekeeper's METER_ACTIVE and METER_INACTIVE.
METER_STATUS_NAMES = {1: "active", 2: "inactive"}


@dataclass(frozen=True)
class Param:
    name: str  # the ABI's argument name
    kind: str
    help: str = ""
    # For arguments that default to the value in force (an option, not a positional).
    current: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Action:
    name: str  # the command name: add-voter
    contract: str  # the deployments-file record of the target
    function: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    help: str = ""
    book_target: bool = False  # an order book: `--book` picks another than "OrderBook"


def _act(name: str, call: str, help: str, *params: Param, book_target: bool = False) -> Action:
    """`Action(name, contract, function, params, help)` of `call = "Contract.function"`."""
    contract, function = call.split(".")
    return Action(name, contract, function, params, help, book_target)


def _params_field(index: int):
    return lambda contract: contract.functions.params().call()[index]


def _current(getter: str):
    """The value in force, read by the target's view `getter()`."""
    return lambda contract: getattr(contract.functions, getter)().call()


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        # Council
        _act("add-voter", "Council.add_voter", "Add a voter.", Param("voter", "address")),
        _act(
            "remove-voter",
            "Council.remove_voter",
            "Remove a voter (never the last).",
            Param("voter", "address"),
        ),
        _act(
            "set-ballot-lifetime",
            "Council.set_ballot_lifetime",
            "How long new ballots stay open.",
            Param("lifetime", "seconds", "1h to 90d"),
        ),
        # Energy ledger
        _act(
            "register-unit",
            "EnergyLedger.register_storage_unit",
            "Register (or re-activate) a storage unit.",
            Param("unit", "address"),
            Param("owner", "address", "earns the storage fee"),
        ),
        _act(
            "remove-unit",
            "EnergyLedger.remove_storage_unit",
            "Deactivate a storage unit.",
            Param("unit", "address"),
        ),
        _act(
            "set-ledger-params",
            "EnergyLedger.set_parameters",
            "Set M, B, C, F and H (each defaults to the value in force).",
            Param("max_mint_cost", "fraction", "M", _params_field(0)),
            Param("max_burn_cost", "fraction", "B", _params_field(1)),
            Param("recovery_share", "fraction", "C", _params_field(2)),
            Param("storage_fee", "fraction", "F", _params_field(3)),
            Param("session_lifetime", "seconds", "H", _params_field(4)),
        ),
        _act(
            "set-session-grace",
            "EnergyLedger.set_session_grace",
            "How long an ended session still pays for reports.",
            Param("grace", "seconds", "60s to 1d"),
        ),
        _act(
            "set-unit-max-report",
            "EnergyLedger.set_unit_max_report",
            "The largest single report of a unit (its battery's capacity).",
            Param("unit", "address"),
            Param("max_report_wh", "wh", "kWh"),
        ),
        # eEuro
        _act(
            "set-banker",
            "EEuro.set_banker",
            "Set or revoke the banker.",
            Param("new_banker", "banker", "an address, or none to revoke"),
        ),
        # Order book
        _act(
            "set-book-rules",
            "OrderBook.set_rules",
            "Tick, lot and minimum order size for new orders (each defaults to the rule in force).",
            Param("tick_size", "price", "EUR/kWh", _current("tick_size")),
            Param("lot_size", "kwh", "kWh", _current("lot_size")),
            Param("min_size", "kwh", "kWh", _current("min_size")),
            book_target=True,
        ),
        # Beekeeper
        _act(
            "set-hive-prices",
            "Beekeeper.set_prices",
            "HVT price of a hive and of each meter.",
            Param("hive_cost", "hvt", "HVT", _current("hive_cost")),
            Param("meter_cost", "hvt", "HVT", _current("meter_cost")),
        ),
        _act(
            "add-meter",
            "Beekeeper.add_meter",
            "Certify a meter for its owner.",
            Param("meter", "address"),
            Param("owner", "address"),
            Param("serial", "text"),
            Param("manufacturer", "text"),
        ),
        _act(
            "add-stablecoin",
            "Beekeeper.add_stablecoin",
            "List a stablecoin.",
            Param("token", "address"),
            Param("code", "text", "e.g. EUR"),
        ),
        _act(
            "freeze-stablecoin",
            "Beekeeper.freeze_stablecoin",
            "No new hive, meter or book may use the coin.",
            Param("token", "address"),
        ),
        _act(
            "create-book",
            "Beekeeper.create_book",
            "Deploy the ENT / coin order book.",
            Param("stablecoin", "address"),
            Param("tick_size", "amount:stablecoin", "coin per kWh"),
            Param("lot_size", "kwh", "kWh"),
            Param("min_size", "kwh", "kWh"),
        ),
        # Hive market (the Beekeeper's hives' markets, SPEC section 8)
        _act(
            "set-hive-fee",
            "HiveMarket.set_fee",
            "The hive markets' platform fee and its receiver.",
            Param("fee_bps", "bps", "of what consumers pay: 0.5% (at most 10%)"),
            Param("fee_to", "address", "where claimed fees go"),
        ),
        _act(
            "set-tariff-bounds",
            "HiveMarket.set_tariff_bounds",
            "Bounds of every tariff a hive owner sets.",
            Param("tariff_min", "tariff", "coin per kWh, 4 decimals"),
            Param("tariff_max", "tariff", "coin per kWh, 4 decimals"),
        ),
        # Bridge
        _act(
            "set-relayers",
            "Bridge.set_relayers",
            "Replace the relayer set and its threshold M.",
            Param("relayers", "addresses", "comma separated"),
            Param("threshold", "int", "M"),
        ),
        _act(
            "set-peer",
            "Bridge.set_peer",
            "The other chain and its Bridge.",
            Param("chain_id", "int"),
            Param("bridge", "address"),
        ),
        _act(
            "list-token",
            "Bridge.list_token",
            "List a token for bridging.",
            Param("token", "address"),
            Param("peer_token", "address"),
            Param("home", "bool", "on: home token (lock/release), off: wrapped"),
        ),
        _act(
            "delist-token",
            "Bridge.delist_token",
            "Stop new transfers of a token.",
            Param("token", "address"),
        ),
        _act(
            "set-bridge-limit",
            "Bridge.set_limit",
            "A token bucket for one token and direction.",
            Param("token", "address"),
            Param("direction", "direction", "out or in"),
            Param("capacity", "amount:token", "token units"),
            Param("refill_per_second", "amount:token", "token units per second"),
            Param("max_per_transfer", "amount:token", "token units"),
        ),
        _act(
            "set-bridge-paused",
            "Bridge.set_paused",
            "Pause or resume the bridge.",
            Param("paused", "bool", "on or off"),
        ),
    )
}

BY_FUNCTION = {(a.contract, a.function): a for a in ACTIONS.values()}

# The argument kinds of the calls members, hive owners, workers and voters send themselves
# (not through a ballot), so `--dry-run` and `decode_call` show them in human units too.
MEMBER_CALLS: dict[tuple[str, str], dict[str, str]] = {
    ("HiveMarket", "open_market"): {"period_seconds": "seconds", "queen": "address"},
    ("HiveMarket", "set_queen"): {"queen": "address"},
    ("HiveMarket", "set_tariffs"): dict.fromkeys(
        ("grid_buy", "grid_sell", "hive_buy", "hive_sell"), "tariff"
    ),
    ("HiveMarket", "enrol"): {"workers": "addresses", "max_wh": "whs"},
    ("HiveMarket", "remove_worker"): {"worker": "address"},
    ("HiveMarket", "deposit"): {"amount": "coin:hive"},
    ("HiveMarket", "withdraw_deposit"): {"amount": "coin:hive"},
    ("HiveMarket", "claim_fees"): {"stablecoin": "address"},
    ("Beekeeper", "change_meter_status"): {"meter": "address", "status": "meter_status"},
    ("Bridge", "lock"): {"token": "address", "amount": "amount:token", "recipient": "address"},
    ("Bridge", "burn"): {"token": "address", "amount": "amount:token", "recipient": "address"},
}


def kinds_of(contract: str, function: str) -> dict[str, str]:
    """The argument kinds of `contract.function` (governed or a member's call)."""
    action = BY_FUNCTION.get((contract, function))
    if action is not None:
        return {p.name: p.kind for p in action.params}
    return MEMBER_CALLS.get((contract, function), {})


class Decimals:
    """Token decimals and book quotes, offline from the deployment; `lookup` (a chain read)
    for any other token."""

    def __init__(self, deployment: Deployment, lookup: Callable[[str, str], int] | None = None):
        self.deployment = deployment
        self.lookup = lookup

    def of_token(self, address: str) -> int:
        name = name_of(self.deployment, address)
        if name == "EEuro":
            return units.EEURO_DECIMALS
        if name in ("EnergyLedger", "HiveToken"):
            return units.ENT_DECIMALS
        if self.lookup is None:
            raise ActionError(f"decimals of token {address} unknown offline")
        return int(self.lookup("decimals", address))

    def of_hive(self, hive: int) -> int:
        """Decimals of the stablecoin of hive `hive`'s market (a chain read)."""
        if self.lookup is None:
            raise ActionError(f"the coin of hive {hive} is unknown offline")
        return int(self.lookup("hive_coin_decimals", hive))

    def of_book_quote(self, book: str) -> int:
        if name_of(self.deployment, book) == "OrderBook":
            return units.EEURO_DECIMALS
        if self.lookup is None:
            raise ActionError(f"quote token of book {book} unknown offline")
        return int(self.lookup("book_quote_decimals", book))


def parse_arg(kind: str, text: str, *, what: str, args: dict, target: str, dec: Decimals):
    """One human argument -> its ABI value."""
    if kind == "address":
        return checksum(text, what=what)
    if kind == "addresses":
        items = [t for t in str(text).replace(" ", "").split(",") if t]
        if not items:
            raise AmountError(f"{what}: no address given")
        return [checksum(t, what=what) for t in items]
    if kind == "banker":
        return ZERO if str(text).strip().lower() == "none" else checksum(text, what=what)
    if kind == "kwh":
        return units.parse_kwh(text, what=what)
    if kind == "wh":
        return units.parse_energy_wh(text, what=what)
    if kind == "fraction":
        return units.parse_fraction(text, what=what)
    if kind == "seconds":
        return units.parse_duration(text, what=what)
    if kind == "hvt":
        return units.parse_hvt(text, what=what)
    if kind == "tariff":
        return units.parse_tariff(text, what=what)
    if kind == "bps":
        return units.parse_bps(text, what=what)
    if kind == "price":
        return units.parse_price(text, quote_decimals=dec.of_book_quote(target), what=what)
    if kind.startswith("amount:"):
        token = args[kind.split(":", 1)[1]]
        return units.parse_units(text, dec.of_token(token), what=what)
    if kind == "direction":
        choice = {"out": 0, "outbound": 0, "in": 1, "inbound": 1}.get(str(text).strip().lower())
        if choice is None:
            raise AmountError(f"{what} {text!r}: not 'out' or 'in'")
        return choice
    if kind == "bool":
        choice = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
        value = choice.get(str(text).strip().lower())
        if value is None:
            raise AmountError(f"{what} {text!r}: not 'on' or 'off'")
        return value
    if kind == "int":
        raw = str(text).strip()
        if not raw.isdigit():
            raise AmountError(f"{what} {text!r}: not a whole number")
        return int(raw)
    if kind == "text":
        return str(text)
    raise ActionError(f"unknown argument kind {kind!r}")


def format_arg(kind: str, value, *, args: dict, target: str, dec: Decimals, names) -> str:
    """One ABI value -> human text (the inverse of `parse_arg`)."""
    try:
        if kind in ("address", "banker"):
            if kind == "banker" and int(value, 16) == 0:
                return "none (revoke the banker)"
            return names(value)
        if kind == "addresses":
            return ", ".join(names(v) for v in value)
        if kind == "kwh":
            return f"{units.format_kwh(value)} kWh"
        if kind == "wh":
            return f"{units.format_wh(value)} kWh"
        if kind == "fraction":
            return units.format_fraction(value)
        if kind == "seconds":
            return f"{units.format_duration(value)} ({value} s)"
        if kind == "hvt":
            return f"{units.format_hvt(value)} HVT"
        if kind == "tariff":
            return f"{units.format_tariff(value)} per kWh"
        if kind == "bps":
            return units.format_bps(value)
        if kind == "whs":
            return ", ".join(f"{units.format_wh(v)} kWh" for v in value)
        if kind == "coin:hive":
            return units.format_units(value, dec.of_hive(args["hive"]))
        if kind == "price":
            decimals = dec.of_book_quote(target)
            return f"{units.format_price(value, quote_decimals=decimals)} EUR/kWh"
        if kind.startswith("amount:"):
            token = args[kind.split(":", 1)[1]]
            return units.format_units(value, dec.of_token(token))
        if kind == "direction":
            return {0: "out (lock, burn)", 1: "in (unlock, refund)"}.get(value, f"{value}?")
        if kind == "bool":
            return "on" if value else "off"
        if kind == "meter_status":
            return f"{METER_STATUS_NAMES.get(value, '?')} ({value})"
    except ActionError:
        pass  # offline without the token's decimals: show the base units
    return str(value)


def encode(client, action: Action, texts: dict[str, str], *, target: str | None = None):
    """The web3 function call of `action` with human arguments `texts` (missing optional
    arguments take the value in force); returns (target address, call, ABI args)."""
    contract = client.at(target, action.contract) if target else client.contract(action.contract)
    dec = Decimals(client.deployment, lookup=chain_lookup(client))
    args: dict[str, Any] = {}
    for p in action.params:
        text = texts.get(p.name)
        if text is None:
            if p.current is None:
                raise ActionError(f"{action.name}: missing {p.name}")
            args[p.name] = p.current(contract)
            continue
        args[p.name] = parse_arg(
            p.kind, text, what=p.name, args=args, target=contract.address, dec=dec
        )
    fn = getattr(contract.functions, action.function)(*args.values())
    return contract.address, fn, args


def calldata(abi: list[dict], function: str, *args) -> bytes:
    """The ABI-encoded call of `function(*args)` by `abi`, offline (web3's codec): the one
    encoder of the CLI's proposals and of the `ape run` scripts' Council votes."""
    from web3 import Web3

    contract = Web3().eth.contract(abi=abi)
    try:
        return bytes.fromhex(contract.encode_abi(function, args=list(args))[2:])
    except Exception as exc:  # unknown function, wrong arguments: say which
        raise ActionError(f"cannot encode {function}{tuple(args)}: {exc}") from None


def chain_lookup(client):
    """`Decimals.lookup` reading the chain: a token's decimals, a book's quote decimals."""
    erc20 = [
        {
            "name": "decimals",
            "type": "function",
            "stateMutability": "view",
            "inputs": [],
            "outputs": [{"name": "", "type": "uint8"}],
        },
        {
            "name": "QUOTE",
            "type": "function",
            "stateMutability": "view",
            "inputs": [],
            "outputs": [{"name": "", "type": "address"}],
        },
    ]

    def lookup(what: str, address) -> int:
        if what == "hive_coin_decimals":  # `address` is a hive id
            try:
                market = client.contract("HiveMarket")
                coin = market.functions.coin_of(int(address)).call()
            except Exception as exc:
                raise ActionError(f"hive {address}: no market to read its coin: {exc}") from None
            if int(coin, 16) == 0:
                raise ActionError(f"hive {address} has no open market")
            address = coin
        handle = client.w3.eth.contract(address=to_checksum_address(address), abi=erc20)
        try:
            if what == "book_quote_decimals":
                quote = handle.functions.QUOTE().call()
                handle = client.w3.eth.contract(address=quote, abi=erc20)
            return handle.functions.decimals().call()
        except Exception as exc:  # any failure: not a token / not a book
            raise ActionError(f"{address} answers no decimals(): {exc}") from None

    return lookup
