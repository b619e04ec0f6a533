"""`powerhive`: the governance and member CLI (web3 + click, the oracle's keystores).

Every user error (unknown ballot, too many decimals, wrong chain, wrong passphrase, a
contract's refusal) is one line on stderr and exit status 1; never a traceback.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import click
from web3.logs import DISCARD

from oracle.cli_base import OneLineGroup, one_line
from oracle.errors import OracleError
from powerhive import __version__, units, views
from powerhive.actions import (
    ACTIONS,
    METER_STATUS_NAMES,
    Action,
    Decimals,
    chain_lookup,
    encode,
)
from powerhive.ballots import action_key, decode_call, find_ballot, open_ballots
from powerhive.client import Client, checksum
from powerhive.errors import AmountError, PowerhiveError
from powerhive.market import Level, preview

KWH, EUR, PRICE = units.format_kwh, units.format_eur, units.format_price


class PowerhiveGroup(OneLineGroup):
    errors = (PowerhiveError, OracleError)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:  # the promise: one line, never a traceback
            if os.environ.get("POWERHIVE_DEBUG"):
                raise
            text = one_line(exc)[:300]
            raise click.ClickException(f"unexpected {type(exc).__name__}: {text}") from None


class Session:
    def __init__(self, rpc, chain_id, deployments, keystore, passphrase_file, passphrase_env):
        self.rpc, self.chain_id, self.deployments = rpc, chain_id, deployments
        self.keystore, self.passphrase_file = keystore, passphrase_file
        self.passphrase_env = passphrase_env
        self._client: Client | None = None

    def client(self, *, signer: bool = False) -> Client:
        if self._client is None:
            self._client = Client.connect(self.rpc, self.deployments, self.chain_id)
        if signer and self._client.account is None:
            from oracle.keystore import load_account, resolve_passphrase

            if self.keystore is None:
                raise PowerhiveError("this command signs: pass --keystore (or POWERHIVE_KEYSTORE)")
            passphrase = resolve_passphrase(self.passphrase_file, self.passphrase_env)
            self._client.account = load_account(self.keystore, passphrase)
        return self._client

    def me(self, address: str | None) -> str:
        if address:
            return checksum(address)
        if self.keystore is None:
            raise PowerhiveError("give an address or --keystore")
        from oracle.keystore import keystore_address

        return keystore_address(self.keystore)


@click.group(cls=PowerhiveGroup)
@click.version_option(__version__, prog_name="powerhive")
@click.option("--rpc", envvar="POWERHIVE_RPC", default="http://127.0.0.1:8545", show_default=True)
@click.option(
    "--chain-id", type=int, envvar="POWERHIVE_CHAIN_ID", help="Refuse a node on another chain."
)
@click.option(
    "--deployments",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="POWERHIVE_DEPLOYMENTS",
    default=Path("deployments"),
    show_default=True,
    help="Directory of <chain_id>.json files.",
)
@click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="POWERHIVE_KEYSTORE",
    help="Encrypted JSON keystore (ape accounts / oracle keygen).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="POWERHIVE_PASSPHRASE_FILE",
)
@click.option("--passphrase-env", default="POWERHIVE_PASSPHRASE", show_default=True)
@click.pass_context
def main(ctx, rpc, chain_id, deployments, keystore, passphrase_file, passphrase_env):
    """PowerHive for members, voters, hive owners and workers: ballots, votes, balances,
    orders, sessions, hive markets, the bridge."""
    ctx.obj = Session(rpc, chain_id, deployments, keystore, passphrase_file, passphrase_env)


def _when(ts: int) -> str:
    left = ts - int(time.time())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    return f"{stamp} ({'in ' + units.format_duration(left) if left > 0 else 'expired'})"


def _show_ballot(b) -> None:
    click.echo(f"ballot {b.short_id}  (key {b.key})")
    click.echo(f"  action   {b.call.describe()}")
    click.echo(f"  opener   {b.opener}")
    need = b.voters // 2 + 1
    click.echo(f"  tally    YES {b.yes} / NO {b.no} of {b.voters} voters (passes at {need} YES)")
    click.echo(f"  expires  {_when(b.expires_at)}")
    for voter, vote in b.votes.items():
        click.echo(f"  vote     {voter} {vote}")


# -- governance ---------------------------------------------------------------------------


@main.command("ballots")
@click.pass_obj
def ballots_cmd(s: Session):
    """Open ballots with their decoded action, tally, expiry and votes."""
    found = open_ballots(s.client())
    if not found:
        click.echo("no open ballots")
    for b in found:
        _show_ballot(b)


def _report_vote(client: Client, sent) -> None:
    passed = client.decode_events("Council", "BallotPassed", sent)
    if passed:
        a = passed[0]["args"]
        click.echo(f"passed with {a['yes']} of {a['voters']} voters: the action was executed")
        return
    for name in ("BallotOpened", "Voted", "VoteFlipped"):
        for log in client.decode_events("Council", name, sent):
            key = "0x" + bytes(log["args"]["key"]).hex()
            if name == "BallotOpened":
                click.echo(f"opened ballot {key[:10]} (key {key}) with your YES")
            else:
                a = log["args"]
                click.echo(f"ballot {key[:10]}: YES {a['yes']} of {a['voters']} voters")
    click.echo(f"tx {sent.tx_hash}")


@main.command()
@click.argument("ballot_id")
@click.option("--no", "against", is_flag=True, help="Flip your YES to NO.")
@click.pass_obj
def vote(s: Session, ballot_id: str, against: bool):
    """Vote YES (or, with --no, flip your YES to NO) on an open ballot by id."""
    client = s.client()
    ballot = find_ballot(open_ballots(client), ballot_id)
    client = s.client(signer=True)
    mine = ballot.votes.get(client.account.address)
    if mine is None:
        raise PowerhiveError(f"{client.account.address} is not a voter")
    if against and mine != "YES":
        raise PowerhiveError("a NO is a flipped YES: you have no YES on this ballot")
    if not against and mine == "YES":
        raise PowerhiveError("you already voted YES on this ballot")
    council = client.contract("Council")
    sent = client.send(council.functions.vote(ballot.call.target, ballot.call.data))
    _report_vote(client, sent)


@main.group()
def propose():
    """Propose a named governed action (opens a ballot with your YES)."""


def _make_propose(action: Action):
    params = [p for p in action.params]

    @click.pass_obj
    def command(s: Session, dry_run: bool, book: str | None, **values):
        client = s.client()
        texts = {p.name: values[p.name] for p in params if values.get(p.name) is not None}
        target_override = checksum(book, what="--book") if book else None
        target, fn, _args = encode(client, action, texts, target=target_override)
        data = bytes.fromhex(fn._encode_transaction_data()[2:])
        call = decode_call(client.deployment, target, data)
        key = action_key(target, data)
        click.echo(f"action   {call.describe()}")
        click.echo(f"ballot   {key[:10]} (key {key})")
        if dry_run:
            click.echo(f"calldata 0x{data.hex()}")
            click.echo("dry run: nothing sent")
            return
        client = s.client(signer=True)
        council = client.contract("Council")
        if client.call(council.functions.vote_of(bytes.fromhex(key[2:]), client.account.address)):
            raise PowerhiveError(f"you already voted on ballot {key[:10]}: use powerhive vote")
        sent = client.send(council.functions.vote(target, data))
        _report_vote(client, sent)

    command.__name__ = action.name.replace("-", "_")
    for p in reversed(params):
        if p.current is None:
            command = click.argument(p.name)(command)
        else:
            flag = "--" + p.name.replace("_", "-")
            command = click.option(flag, p.name, help=f"{p.help} (default: value in force)")(
                command
            )
    command = click.option("--dry-run", is_flag=True, help="Print the decoded call only.")(command)
    command = click.option(
        "--book", default=None, hidden=not action.book_target, help="Another order book."
    )(command)
    args = " ".join(p.name.upper() for p in params if p.current is None)
    helptext = f"{action.help} ({action.contract}.{action.function} {args})".strip()
    return propose.command(action.name, help=helptext)(command)


for _action in ACTIONS.values():
    _make_propose(_action)


# -- member -------------------------------------------------------------------------------


@main.command()
@click.argument("address", required=False)
@click.pass_obj
def balance(s: Session, address: str | None):
    """ENT (kWh), eEuro (EUR) and what is locked or escrowed."""
    client = s.client()
    who = s.me(address)
    ledger, eeuro = client.contract("EnergyLedger"), client.contract("EEuro")
    escrow = views.escrow_of(client, who, views.session_units(client, who))
    click.echo(f"account  {who}")
    click.echo(f"ENT      {KWH(client.call(ledger.functions.balanceOf(who)))} kWh")
    click.echo(f"escrow   {KWH(escrow)} kWh in sessions")
    click.echo(f"eEuro    {EUR(client.call(eeuro.functions.balanceOf(who)))} EUR")
    locked = client.call(eeuro.functions.locked(who))
    click.echo(f"locked   {EUR(locked)} EUR for redemption")


def _book(client: Client, book: str | None):
    return client.at(book, "OrderBook") if book else client.contract("OrderBook")


def _levels(client, book, is_buy: bool) -> list[Level]:
    return views.levels(client, book, is_buy)


@main.command("book")
@click.option("--book", default=None, help="Another order book's address.")
@click.pass_obj
def book_cmd(s: Session, book: str | None):
    """The order book's depth, asks above bids."""
    client = s.client()
    handle = _book(client, book)
    for lv in reversed(_levels(client, handle, False)):
        click.echo(
            f"ask {PRICE(lv.price):>12} EUR/kWh {KWH(lv.amount):>14} kWh  {lv.orders} orders"
        )
    click.echo("-" * 40)
    for lv in _levels(client, handle, True):
        click.echo(
            f"bid {PRICE(lv.price):>12} EUR/kWh {KWH(lv.amount):>14} kWh  {lv.orders} orders"
        )


@main.group()
def order():
    """Place or cancel orders (amounts in kWh, prices in EUR/kWh)."""


def _place(s: Session, is_buy: bool, amount_text, price_text, ioc, dry_run, book):
    client = s.client()
    handle = _book(client, book)
    amount = units.parse_kwh(amount_text)
    price = units.parse_price(price_text)
    lot, tick, minimum = (
        client.call(handle.functions.lot_size()),
        client.call(handle.functions.tick_size()),
        client.call(handle.functions.min_size()),
    )
    units.check_multiple(amount, lot, what="amount", show=lambda v: f"{KWH(v)} kWh")
    units.check_multiple(price, tick, what="price", show=lambda v: f"{PRICE(v)} EUR/kWh")
    if amount < minimum:
        raise AmountError(f"amount {KWH(amount)} kWh is below the minimum order {KWH(minimum)} kWh")
    p = preview(
        _levels(client, handle, not is_buy),
        is_buy=is_buy,
        price=price,
        amount=amount,
        ioc=ioc,
        min_size=minimum,
    )
    side = "buy" if is_buy else "sell"
    click.echo(f"{side} {KWH(amount)} kWh at {PRICE(price)} EUR/kWh{' IOC' if ioc else ''}")
    for f in p.fills:
        click.echo(f"  fill {KWH(f.amount)} kWh at {PRICE(f.price)} EUR/kWh = {EUR(f.quote)} EUR")
    click.echo(
        f"  filled {KWH(p.filled)} kWh for {EUR(p.quote_traded)} EUR; "
        f"rests {KWH(p.rest)} kWh; not placed {KWH(p.dropped)} kWh"
    )
    if p.warning:
        click.echo(f"  warning: {p.warning}")
    if dry_run:
        click.echo("dry run: nothing sent")
        return
    client = s.client(signer=True)
    me = client.account.address
    token = client.contract("EEuro" if is_buy else "EnergyLedger")
    needed = p.quote_needed() if is_buy else amount
    if client.call(token.functions.allowance(me, handle.address)) < needed:
        client.send(token.functions.approve(handle.address, needed))
    sent = client.send(handle.functions.place(is_buy, price, amount, ioc, 0))
    for log in handle.events.Traded().process_receipt(sent.receipt, errors=DISCARD):
        a = log["args"]
        click.echo(f"traded {KWH(a['amount'])} kWh at {PRICE(a['price'])} EUR/kWh")
    for log in handle.events.OrderPlaced().process_receipt(sent.receipt, errors=DISCARD):
        a = log["args"]
        click.echo(
            f"order {a['order_id']:#x} rests: {KWH(a['amount'])} kWh at {PRICE(a['price'])} EUR/kWh"
        )
    click.echo(f"tx {sent.tx_hash}")


for _side in ("buy", "sell"):

    def _make(side):
        @order.command(
            side,
            help=f"{side.capitalize()} AMOUNT kWh at PRICE EUR/kWh, with a preview of the fills.",
        )
        @click.argument("amount")
        @click.argument("price")
        @click.option("--ioc", is_flag=True, help="Immediate or cancel: never rest.")
        @click.option("--dry-run", is_flag=True, help="Preview only.")
        @click.option("--book", default=None, help="Another order book's address.")
        @click.pass_obj
        def cmd(s, amount, price, ioc, dry_run, book):
            _place(s, side == "buy", amount, price, ioc, dry_run, book)

        return cmd

    _make(_side)


def _order_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise AmountError(f"order id {text!r}: not a number") from None


@order.command("cancel")
@click.argument("order_id")
@click.option("--book", default=None)
@click.pass_obj
def order_cancel(s: Session, order_id: str, book: str | None):
    """Cancel an open order and get its escrow back."""
    client = s.client(signer=True)
    handle = _book(client, book)
    oid = _order_id(order_id)
    sent = client.send(handle.functions.cancel(oid))
    for log in handle.events.OrderCancelled().process_receipt(sent.receipt, errors=DISCARD):
        click.echo(f"cancelled order {oid:#x}: {KWH(log['args']['amount'])} kWh")
    click.echo(f"tx {sent.tx_hash}")


@main.command()
@click.argument("address", required=False)
@click.option("--book", default=None)
@click.pass_obj
def orders(s: Session, address: str | None, book: str | None):
    """Open orders of an account (default: the keystore's)."""
    client = s.client()
    who = s.me(address)
    handle = _book(client, book)
    found = views.open_orders(client, who, handle)
    if not found:
        click.echo("no open orders")
    for o in found:
        side = "bid" if o.is_buy else "ask"
        click.echo(f"{o.order_id:#x} {side} {KWH(o.amount)} kWh at {PRICE(o.price)} EUR/kWh")


@main.group()
def session():
    """Consumption sessions on the energy ledger."""


@session.command("start")
@click.argument("unit")
@click.argument("amount")
@click.pass_obj
def session_start(s: Session, unit: str, amount: str):
    """Escrow AMOUNT kWh of ENT for energy from UNIT."""
    client = s.client(signer=True)
    ledger = client.contract("EnergyLedger")
    sent = client.send(ledger.functions.start_session(checksum(unit), units.parse_kwh(amount)))
    for log in ledger.events.SessionStarted().process_receipt(sent.receipt, errors=DISCARD):
        a = log["args"]
        click.echo(
            f"session on {a['unit']}: {KWH(a['escrow'])} kWh escrowed, "
            f"{units.format_wh(a['reserved_wh'])} kWh reserved, ends {_when(a['expires_at'])}"
        )
    click.echo(f"tx {sent.tx_hash}")


@session.command("close")
@click.argument("unit")
@click.option("--consumer", default=None, help="Settle another consumer's ended session.")
@click.pass_obj
def session_close(s: Session, unit: str, consumer: str | None):
    """End your session on UNIT (or settle an ended one after its grace)."""
    client = s.client(signer=True)
    ledger = client.contract("EnergyLedger")
    who = checksum(consumer) if consumer else client.account.address
    sent = client.send(ledger.functions.close_session(who, checksum(unit)))
    for log in ledger.events.SessionEnded().process_receipt(sent.receipt, errors=DISCARD):
        click.echo(f"session ended; it bills reports until {_when(log['args']['grace_ends_at'])}")
    for log in ledger.events.SessionClosed().process_receipt(sent.receipt, errors=DISCARD):
        a = log["args"]
        click.echo(
            f"session settled: {KWH(a['refunded'])} kWh refunded, "
            f"{units.format_wh(a['released_wh'])} kWh back to the unit"
        )
    click.echo(f"tx {sent.tx_hash}")


@main.command()
@click.argument("amount")
@click.pass_obj
def redeem(s: Session, amount: str):
    """Lock AMOUNT EUR of eEuro for the banker to redeem."""
    client = s.client(signer=True)
    eeuro = client.contract("EEuro")
    sent = client.send(eeuro.functions.lock(units.parse_eur(amount)))
    locked = client.call(eeuro.functions.locked(client.account.address))
    click.echo(f"locked {amount} EUR; {EUR(locked)} EUR await the banker")
    click.echo(f"tx {sent.tx_hash}")


@main.group()
def banker():
    """The banker's queue of locked eEuro, and mint / burn / release."""


@banker.command("queue")
@click.pass_obj
def banker_queue(s: Session):
    """Every holder with eEuro locked for redemption."""
    client = s.client()
    queue = views.redemption_queue(client)
    for holder, locked in queue:
        click.echo(f"{holder} {EUR(locked)} EUR")
    click.echo(f"total locked {EUR(sum(locked for _, locked in queue))} EUR")


BANKER_OPS = {
    "burn": "Burn AMOUNT EUR that ACCOUNT locked (after paying them out).",
    "release": "Return AMOUNT EUR of ACCOUNT's locked eEuro to it.",
    "mint": "Mint AMOUNT EUR to ACCOUNT against euros received.",
}


def _banker_command(fn_name: str, helptext: str):
    @banker.command(fn_name, help=helptext)
    @click.argument("account")
    @click.argument("amount")
    @click.pass_obj
    def command(s: Session, account: str, amount: str):
        client = s.client(signer=True)
        eeuro = client.contract("EEuro")
        value = units.parse_eur(amount)
        sent = client.send(getattr(eeuro.functions, fn_name)(checksum(account), value))
        click.echo(f"{fn_name} {EUR(value)} EUR for {checksum(account)}; tx {sent.tx_hash}")

    return command


for _op, _help in BANKER_OPS.items():
    _banker_command(_op, _help)


# -- calls a member sends itself: hive owners, workers, the bridge, ballots' upkeep -------


def _transact(s: Session, fn, *, dry_run: bool, approve=None):
    """Print the decoded call `fn`; unless `dry_run`, approve `approve = (token handle,
    amount)` to the called contract if the allowance is short, then send it."""
    client = s.client()
    data = bytes.fromhex(fn._encode_transaction_data()[2:])
    decimals = Decimals(client.deployment, lookup=chain_lookup(client))
    call = decode_call(client.deployment, fn.address, data, decimals=decimals)
    click.echo(f"call     {call.describe()}")
    if dry_run:
        click.echo(f"calldata 0x{data.hex()}")
        click.echo("dry run: nothing sent")
        return None
    client = s.client(signer=True)
    if approve is not None:
        token, amount = approve
        me = client.account.address
        if client.call(token.functions.allowance(me, fn.address)) < amount:
            client.send(token.functions.approve(fn.address, amount))
    return client.send(fn)


def _done(client: Client, sent, contract: str, *events: str) -> None:
    """Each of `events` of `contract` in the receipt as `Name(arg=value, ...)`, then the tx."""
    if sent is None:
        return
    for name in events:
        for log in client.decode_events(contract, name, sent):
            args = ", ".join(f"{k}={_show(v)}" for k, v in log["args"].items())
            click.echo(f"event    {name}({args})")
    click.echo(f"tx {sent.tx_hash}")


def _sends(contract: str, *events: str):
    """Make the decorated `build(s, **arguments)` a command that sends one call a member
    sends itself (not through a ballot): `build` checks and parses the arguments and returns
    the web3 call, or `(call, (token, amount))` when the call spends an allowance. The
    command prints the decoded call, stops there with `--dry-run`, else approves what is
    short, sends, and prints `events` of `contract` from the receipt. Stack the command's
    click decorators (group, arguments, options) above this one."""

    def wrap(build):
        @functools.wraps(build)
        def command(s: Session, dry_run: bool, **values):
            built = build(s, **values)
            fn, approve = built if isinstance(built, tuple) else (built, None)
            sent = _transact(s, fn, dry_run=dry_run, approve=approve)
            _done(s.client(), sent, contract, *events)

        command = click.option("--dry-run", is_flag=True, help="Print the decoded call only.")(
            command
        )
        return click.pass_obj(command)

    return wrap


def _show(value) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _whole(text: str, what: str, *, minimum: int = 0) -> int:
    raw = str(text).strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise AmountError(f"{what} {text!r}: not a whole number >= {minimum}")
    return int(raw)


def _coin(client: Client, coin: str) -> tuple[int, str]:
    """(decimals, unit label) of a stablecoin."""
    decimals = Decimals(client.deployment, lookup=chain_lookup(client)).of_token(coin)
    name = client.name_of(coin)
    label = {"EEuro": "EUR"}.get(name or "", name or f"of {checksum(coin)}")
    return decimals, label


def _hive_market(client: Client, hive_text: str):
    """(HiveMarket handle, hive id, coin handle, decimals, label) of an open hive market."""
    market = client.contract("HiveMarket")
    hive = _whole(hive_text, "hive", minimum=1)
    coin = client.call(market.functions.coin_of(hive))
    if int(coin, 16) == 0:
        raise PowerhiveError(f"hive {hive} has no open market (powerhive hive open-market)")
    decimals, label = _coin(client, coin)
    return market, hive, client.at(coin, "EEuro"), decimals, label


@main.group()
def hive():
    """A hive owner's hive and meters (Beekeeper: create, meters, meter status, freeze) and
    market (HiveMarket: open it, its queen, tariffs, workers, deposit)."""


@hive.command("show")
@click.argument("hive_id")
@click.pass_obj
def hive_show(s: Session, hive_id: str):
    """A hive's market: period, queen, workers, deposit and tariffs (coin per kWh)."""
    client = s.client()
    market, hive_no, _coin_handle, decimals, label = _hive_market(client, hive_id)
    v = client.call(market.functions.market(hive_no))
    start, period, next_period, _dec, workers, submitted, is_open, queen, deposit = v
    owner = client.call(client.contract("Beekeeper").functions.hive_info(hive_no))[0]
    click.echo(f"hive     {hive_no} of {owner}")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start))
    click.echo(f"periods  {units.format_duration(period)} each since {started}")
    click.echo(f"settle   period {next_period} next")
    click.echo(f"queen    {queen}")
    state = f"open, {submitted} submitted" if is_open else "none open"
    click.echo(f"workers  {workers} enrolled; period {state}")
    click.echo(f"deposit  {units.format_units(deposit, decimals)} {label}")
    names = ("grid buy", "grid sell", "hive buy", "hive sell")

    def shown(values) -> str:
        pairs = zip(names, values, strict=True)
        return ", ".join(f"{n} {units.format_tariff(t)}" for n, t in pairs)

    click.echo(f"tariffs  {shown(client.call(market.functions.tariffs(hive_no)))} per kWh")
    *pending, effective = client.call(market.functions.pending_tariffs(hive_no))
    if effective:
        click.echo(f"pending  {shown(pending)} per kWh from period {effective}")


def _hvt_cost(client: Client, meters: int, *, hive: bool) -> tuple:
    """Print and return (HiveToken handle, cost) of a hive of `meters` (or `meters` more)."""
    keeper = client.contract("Beekeeper")
    cost = meters * client.call(keeper.functions.meter_cost())
    cost += client.call(keeper.functions.hive_cost()) if hive else 0
    click.echo(f"cost     {units.format_hvt(cost)} HVT (half burned, half staked)")
    return client.contract("HiveToken"), cost


@hive.command("create")
@click.argument("coin")
@click.argument("meters", nargs=-1, required=True)
@_sends("Beekeeper", "HiveCreated")
def hive_create(s: Session, coin: str, meters: tuple[str, ...]):
    """Create a hive (Beekeeper) of your METERS on stablecoin COIN (eEuro, or an address),
    paying hive_cost + meter_cost per meter in HVT (half burned, half staked)."""
    client = s.client()
    token = _token(client, coin)
    chosen = [checksum(m, what="meter") for m in meters]
    approve = _hvt_cost(client, len(chosen), hive=True)
    return client.contract("Beekeeper").functions.create_hive(token, chosen), approve


@hive.command("add-meter")
@click.argument("hive_id")
@click.argument("meter")
@_sends("Beekeeper", "MeterAddedToHive")
def hive_add_meter(s: Session, hive_id: str, meter: str):
    """Add your METER to your hive HIVE for meter_cost HVT (half burned, half staked)."""
    client = s.client()
    approve = _hvt_cost(client, 1, hive=False)
    fn = client.contract("Beekeeper").functions.add_meter_to_hive(
        _whole(hive_id, "hive", minimum=1), checksum(meter, what="meter")
    )
    return fn, approve


@hive.command("drop-meter")
@click.argument("hive_id")
@click.argument("meter")
@_sends("Beekeeper", "MeterDroppedFromHive")
def hive_drop_meter(s: Session, hive_id: str, meter: str):
    """Take METER out of your hive HIVE; the HVT it staked comes back."""
    return (
        s.client()
        .contract("Beekeeper")
        .functions.drop_meter_from_hive(
            _whole(hive_id, "hive", minimum=1), checksum(meter, what="meter")
        )
    )


METER_STATUS = {name: code for code, name in METER_STATUS_NAMES.items()}


@hive.command("meter-status")
@click.argument("meter")
@click.argument("status")
@_sends("Beekeeper", "MeterStatusChanged")
def hive_meter_status(s: Session, meter: str, status: str):
    """Switch your METER (its owner's call) to STATUS: active, or inactive (it cannot join a
    hive then; one already in a hive stays there)."""
    code = METER_STATUS.get(str(status).strip().lower())
    if code is None:
        raise AmountError(f"status {status!r}: not 'active' or 'inactive'")
    keeper = s.client().contract("Beekeeper")
    return keeper.functions.change_meter_status(checksum(meter, what="meter"), code)


@hive.command("freeze")
@click.argument("hive_id")
@_sends("Beekeeper", "HiveFrozen")
def hive_freeze(s: Session, hive_id: str):
    """End your hive HIVE: its meters are free again and its whole stake comes back."""
    keeper = s.client().contract("Beekeeper")
    return keeper.functions.freeze_hive(_whole(hive_id, "hive", minimum=1))


@hive.command("open-market")
@click.argument("hive_id")
@click.argument("period")
@click.argument("queen")
@_sends("HiveMarket", "MarketOpened")
def hive_open_market(s: Session, hive_id: str, period: str, queen: str):
    """Open HIVE's market: periods of PERIOD (15m, 1h, ...) aggregated by QUEEN."""
    market = s.client().contract("HiveMarket")
    hive_no = _whole(hive_id, "hive", minimum=1)
    seconds = units.parse_duration(period, what="period")
    return market.functions.open_market(hive_no, seconds, checksum(queen, what="queen"))


@hive.command("set-queen")
@click.argument("hive_id")
@click.argument("queen")
@_sends("HiveMarket", "QueenSet")
def hive_set_queen(s: Session, hive_id: str, queen: str):
    """Replace HIVE's queen (its aggregator)."""
    market, hive_no, *_ = _hive_market(s.client(), hive_id)
    return market.functions.set_queen(hive_no, checksum(queen, what="queen"))


@hive.command("set-tariffs")
@click.argument("hive_id")
@click.option("--grid-buy", help="Workers' price for grid energy (coin per kWh).")
@click.option("--grid-sell", help="Workers' price for energy sold to the grid.")
@click.option("--hive-buy", help="Consumers' price inside the hive.")
@click.option("--hive-sell", help="Producers' price inside the hive.")
@_sends("HiveMarket", "TariffsSet")
def hive_set_tariffs(s: Session, hive_id, grid_buy, grid_sell, hive_buy, hive_sell):
    """HIVE's tariffs from the next period (each defaults to the tariff in force)."""
    client = s.client()
    market, hive_no, *_ = _hive_market(client, hive_id)
    now = client.call(market.functions.tariffs(hive_no))
    given = (grid_buy, grid_sell, hive_buy, hive_sell)
    names = ("grid_buy", "grid_sell", "hive_buy", "hive_sell")
    values = [
        units.parse_tariff(text, what=name) if text is not None else current
        for text, name, current in zip(given, names, now, strict=True)
    ]
    return market.functions.set_tariffs(hive_no, *values)


def _worker_max(text: str) -> tuple[str, int]:
    address, sep, amount = str(text).partition("=")
    if not sep:
        raise AmountError(f"worker {text!r}: give WORKER=MAX_KWH (its rated kWh per period)")
    return checksum(address, what="worker"), units.parse_energy_wh(amount, what="rated maximum")


@hive.command("enrol")
@click.argument("hive_id")
@click.argument("workers", nargs=-1, required=True)
@_sends("HiveMarket", "WorkerEnrolled")
def hive_enrol(s: Session, hive_id: str, workers: tuple[str, ...]):
    """Enrol meters of HIVE as workers: WORKER=MAX_KWH (rated kWh per period) each."""
    market, hive_no, *_ = _hive_market(s.client(), hive_id)
    pairs = [_worker_max(w) for w in workers]
    return market.functions.enrol(hive_no, [a for a, _ in pairs], [m for _, m in pairs])


@hive.command("remove-worker")
@click.argument("hive_id")
@click.argument("worker")
@_sends("HiveMarket", "WorkerRemoved")
def hive_remove_worker(s: Session, hive_id: str, worker: str):
    """End WORKER's enrolment in HIVE (its balance stays withdrawable)."""
    market, hive_no, *_ = _hive_market(s.client(), hive_id)
    return market.functions.remove_worker(hive_no, checksum(worker, what="worker"))


@hive.command("deposit")
@click.argument("hive_id")
@click.argument("amount")
@_sends("HiveMarket", "Deposited")
def hive_deposit(s: Session, hive_id: str, amount: str):
    """Add AMOUNT (in the hive's coin) to HIVE's owner deposit."""
    market, hive_no, coin, decimals, label = _hive_market(s.client(), hive_id)
    value = units.parse_units(amount, decimals, unit=label)
    return market.functions.deposit(hive_no, value), (coin, value)


@hive.command("withdraw-deposit")
@click.argument("hive_id")
@click.argument("amount")
@_sends("HiveMarket", "DepositWithdrawn")
def hive_withdraw_deposit(s: Session, hive_id: str, amount: str):
    """Take AMOUNT (in the hive's coin) back from HIVE's owner deposit."""
    market, hive_no, _coin_handle, decimals, label = _hive_market(s.client(), hive_id)
    value = units.parse_units(amount, decimals, unit=label)
    return market.functions.withdraw_deposit(hive_no, value)


@main.group()
def worker():
    """A hive worker's prepaid escrow, in its hive's coin."""


def _worker_hive(client: Client, who: str):
    market = client.contract("HiveMarket")
    view = client.call(market.functions.worker(who))
    if view[0] == 0:
        raise PowerhiveError(f"{who} is not a worker of any hive")
    return (view, *_hive_market(client, str(view[0])))


@worker.command("show")
@click.argument("address", required=False)
@click.pass_obj
def worker_show(s: Session, address: str | None):
    """A worker's hive, balance, debt and what it may withdraw now."""
    client = s.client()
    who = s.me(address)
    view, market, hive_no, _coin_handle, decimals, label = _worker_hive(client, who)
    balance, max_wh = view[1], view[3]
    reserve = client.call(market.functions.withdraw_reserve(who))
    free = max(0, balance - reserve)
    click.echo(f"worker   {who} in hive {hive_no} (rated {units.format_wh(max_wh)} kWh/period)")
    click.echo(f"balance  {units.format_units(balance, decimals)} {label}")
    debt = client.call(market.functions.debt_of(who))
    click.echo(f"debt     {units.format_units(debt, decimals)} {label}")
    click.echo(f"free     {units.format_units(free, decimals)} {label} withdrawable now")


@worker.command("prepay")
@click.argument("amount")
@_sends("HiveMarket", "Prepaid")
def worker_prepay(s: Session, amount: str):
    """Prepay AMOUNT (in your hive's coin) into your escrow; a debt is repaid first."""
    _view, market, _hive, coin, decimals, label = _worker_hive(s.client(), s.me(None))
    value = units.parse_units(amount, decimals, unit=label)
    return market.functions.prepay(value), (coin, value)


@worker.command("withdraw")
@click.argument("amount")
@_sends("HiveMarket", "Withdrawn")
def worker_withdraw(s: Session, amount: str):
    """Withdraw AMOUNT (in your hive's coin) of what open periods do not reserve."""
    _view, market, _hive, _coin_handle, decimals, label = _worker_hive(s.client(), s.me(None))
    return market.functions.withdraw(units.parse_units(amount, decimals, unit=label))


# -- the bridge ---------------------------------------------------------------------------

TOKEN_ALIASES = {
    "ent": "EnergyLedger",
    "eeuro": "EEuro",
    "eur": "EEuro",
    "hvt": "HiveToken",
    "went": "WrappedENT",
    "weeur": "WrappedEEuro",
}


def _token(client: Client, text: str) -> str:
    """A token by alias (ENT, eEuro, wENT, wEEUR), deployments-file name or address."""
    name = TOKEN_ALIASES.get(str(text).strip().lower(), str(text).strip())
    if client.has(name):
        return checksum(client.deployment.contract(name).address)
    if str(text).startswith("0x"):
        return checksum(text, what="token")
    raise AmountError(f"token {text!r}: not ENT, eEuro, wENT, wEEUR, a contract name or address")


def _bridge_call(s: Session, home: bool, token_text, amount, recipient):
    """The checked `lock` (home token) or `burn` (wrapped token) call, and its approval."""
    client = s.client()
    if not client.has("Bridge"):
        raise PowerhiveError("this deployment has no Bridge")
    bridge = client.contract("Bridge")
    token = _token(client, token_text)
    info = client.call(bridge.functions.token_info(token))
    peer_token, is_home, listed = info
    if not listed:
        raise PowerhiveError(f"token {token} is not listed on this chain's bridge")
    if is_home != home:
        other = "lock" if is_home else "burn"
        kind = "a home token" if is_home else "a wrapped token"
        raise PowerhiveError(f"token {token} is {kind}: use powerhive bridge {other}")
    dest = client.call(bridge.functions.peer_chain())
    if dest == 0:
        raise PowerhiveError("the bridge is not peered with another chain yet")
    decimals = Decimals(client.deployment, lookup=chain_lookup(client)).of_token(token)
    value = units.parse_units(amount, decimals)
    to = checksum(recipient, what="recipient")
    click.echo(
        f"{'lock' if home else 'burn'} {units.format_units(value, decimals)} of {token} "
        f"for {to} on chain {dest} (as {peer_token})"
    )
    fn = (bridge.functions.lock if home else bridge.functions.burn)(token, value, dest, to)
    return fn, ((client.at(token, "EEuro"), value) if home else None)


@main.group()
def bridge():
    """Send tokens to the peer chain and list the transfers still pending."""


@bridge.command("lock")
@click.argument("token")
@click.argument("amount")
@click.argument("recipient")
@_sends("Bridge", "TransferSent")
def bridge_lock(s: Session, token: str, amount: str, recipient: str):
    """Lock AMOUNT of home TOKEN (ENT, eEuro) here for RECIPIENT on the peer chain."""
    return _bridge_call(s, True, token, amount, recipient)


@bridge.command("burn")
@click.argument("token")
@click.argument("amount")
@click.argument("recipient")
@_sends("Bridge", "TransferSent")
def bridge_burn(s: Session, token: str, amount: str, recipient: str):
    """Burn AMOUNT of wrapped TOKEN (wENT, wEEUR) to release it to RECIPIENT at home."""
    return _bridge_call(s, False, token, amount, recipient)


@bridge.command("pending")
@click.argument("token")
@click.pass_obj
def bridge_pending(s: Session, token: str):
    """TOKEN's outbound transfers neither delivered nor refunded yet."""
    client = s.client()
    if not client.has("Bridge"):
        raise PowerhiveError("this deployment has no Bridge")
    handle = client.contract("Bridge")
    address = _token(client, token)
    decimals = Decimals(client.deployment, lookup=chain_lookup(client)).of_token(address)
    end = client.call(handle.functions.next_nonce(address))
    page = client.call(handle.functions.MAX_PAGE())
    nonces: list[int] = []
    for start in range(0, end, page):
        nonces += client.call(handle.functions.locked_transfers(address, start, page))
    if not nonces:
        click.echo("no pending transfers")
        return
    wanted = set(nonces)
    sent = {
        log["args"]["nonce"]: log["args"]
        for log in client.events("Bridge", "TransferSent", {"token": address})
        if log["args"]["nonce"] in wanted
    }
    total = 0
    for nonce in nonces:
        a = sent.get(nonce)
        if a is None:
            click.echo(f"nonce {nonce}: pending (no TransferSent event found)")
            continue
        total += a["amount"]
        click.echo(
            f"nonce {nonce}: {units.format_units(a['amount'], decimals)} from {a['sender']} "
            f"to {a['recipient']} on chain {a['dest_chain']}, sent {_when(a['timestamp'])}"
        )
    click.echo(f"{len(nonces)} pending, {units.format_units(total, decimals)} in all")


# -- a ballot's upkeep ----------------------------------------------------------------------

BALLOT_EVENTS = ("BallotPassed", "BallotExpired", "BallotWithdrawn")


def _ballot_call(s: Session, ballot_id: str, fn_name: str, *, by_key: bool):
    ballot = find_ballot(open_ballots(s.client()), ballot_id)
    council = s.client().contract("Council")
    key = bytes.fromhex(ballot.key[2:])
    call = getattr(council.functions, fn_name)
    click.echo(f"ballot   {ballot.short_id}: {ballot.call.describe()}")
    return call(key) if by_key else call(ballot.call.target, ballot.call.data)


@main.command()
@click.argument("ballot_id")
@_sends("Council", *BALLOT_EVENTS)
def execute(s: Session, ballot_id: str):
    """Run a ballot that holds a majority of the current voters but has not run (voters were
    removed after its YES votes). Any voter."""
    return _ballot_call(s, ballot_id, "execute", by_key=False)


@main.command("close-expired")
@click.argument("ballot_id")
@_sends("Council", *BALLOT_EVENTS)
def close_expired(s: Session, ballot_id: str):
    """Remove an expired ballot from the open list (frees its opener's quota). Anyone."""
    return _ballot_call(s, ballot_id, "close_expired", by_key=True)


@main.command("withdraw-ballot")
@click.argument("ballot_id")
@_sends("Council", *BALLOT_EVENTS)
def withdraw_ballot(s: Session, ballot_id: str):
    """Withdraw a ballot you opened."""
    return _ballot_call(s, ballot_id, "withdraw", by_key=True)


# -- the hand-over to the Council -----------------------------------------------------------

# Every admin role of the protocol: (deployments-file record, getter). Each must hold the
# Council's address once the deployment has been handed over (docs/deploy-poa.md).
ADMIN_ROLES = (
    ("EnergyLedger", "owner"),
    ("EEuro", "owner"),
    ("OrderBook", "owner"),
    ("EnergyAuction", "owner"),
    ("BalancingMarket", "GOVERNANCE"),
    ("HiveMarket", "governance"),
    ("Beekeeper", "governance"),
    ("Bridge", "governance"),
)


@main.command()
@click.pass_obj
def roles(s: Session):
    """Who holds every admin role: each must be the Council (exit 1 if one is not), and the
    roles the Council hands out (voters, banker, relayers, fee receiver, minters)."""
    client = s.client()
    council = client.contract("Council").address
    wrong = []
    for name, getter in ADMIN_ROLES:
        if not client.has(name):
            click.echo(f"{name + '.' + getter:<28} (not in this deployment)")
            continue
        holder = checksum(client.call(getattr(client.contract(name).functions, getter)()))
        ok = holder == council
        wrong += [] if ok else [f"{name}.{getter}"]
        click.echo(f"{name + '.' + getter:<28} {holder} {'Council' if ok else 'NOT the Council'}")
    click.echo(f"{'HiveToken':<28} no admin role (minter and owner renounced at deployment)")
    for name in ("WrappedENT", "WrappedEEuro"):
        if client.has(name):
            minter = checksum(client.call(client.contract(name).functions.bridge()))
            bridge_ok = client.has("Bridge") and minter == client.contract("Bridge").address
            wrong += [] if bridge_ok else [f"{name}.bridge"]
            click.echo(
                f"{name + '.bridge':<28} {minter} {'Bridge' if bridge_ok else 'NOT the Bridge'}"
            )
    deployer = checksum(client.deployment.deployer)
    voters = client.call(client.contract("Council").functions.voters())
    click.echo(f"Council voters ({len(voters)}): " + ", ".join(voters))
    if deployer in voters:
        click.echo(f"note: the deployer {deployer} is still a voter")
    click.echo(
        f"EEuro.banker                 {client.call(client.contract('EEuro').functions.banker())}"
    )
    if client.has("HiveMarket"):
        fee_to = client.call(client.contract("HiveMarket").functions.fee_to())
        click.echo(f"HiveMarket.fee_to            {fee_to}")
    if client.has("Bridge"):
        b = client.contract("Bridge")
        relayers = client.call(b.functions.relayers())
        threshold = client.call(b.functions.threshold())
        shown = f"{threshold} of {len(relayers)}: {', '.join(relayers)}" if relayers else "none"
        click.echo(f"Bridge relayers              {shown}")
    if wrong:
        raise PowerhiveError(f"not handed over to the Council: {', '.join(wrong)}")
    click.echo("every admin role is the Council's")


# -- dashboard ----------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8050, show_default=True, help="0: any free port.")
@click.pass_obj
def dashboard(s: Session, host: str, port: int):
    """Serve the read-only dashboard (network, market, members, Council, banker, hives,
    bridge) for the browser; it keeps serving a banner while the chain is down."""
    from powerhive.dashboard.app import Dashboard, serve

    try:
        serve(Dashboard(s.rpc, s.deployments, s.chain_id), host, port)
    except OSError as exc:
        raise PowerhiveError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
