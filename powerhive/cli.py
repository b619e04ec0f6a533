"""`powerhive`: the governance and member CLI (web3 + click, the oracle's keystores).

Every user error (unknown ballot, too many decimals, wrong chain, wrong passphrase, a
contract's refusal) is one line on stderr and exit status 1; never a traceback.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
from web3.logs import DISCARD

from oracle.errors import OracleError
from powerhive import __version__, units, views
from powerhive.actions import ACTIONS, Action, encode
from powerhive.ballots import action_key, decode_call, find_ballot, open_ballots
from powerhive.client import Client, checksum
from powerhive.errors import AmountError, PowerhiveError
from powerhive.market import Level, preview

KWH, EUR, PRICE = units.format_kwh, units.format_eur, units.format_price


class PowerhiveGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (PowerhiveError, OracleError) as exc:
            raise click.ClickException(" ".join(str(exc).split())) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:  # the promise: one line, never a traceback
            if os.environ.get("POWERHIVE_DEBUG"):
                raise
            text = " ".join(str(exc).split())[:300]
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
    """PowerHive for members and voters: ballots, votes, balances, orders, sessions."""
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


def _banker_op(s: Session, fn_name: str, account: str, amount: str):
    client = s.client(signer=True)
    eeuro = client.contract("EEuro")
    value = units.parse_eur(amount)
    sent = client.send(getattr(eeuro.functions, fn_name)(checksum(account), value))
    click.echo(f"{fn_name} {EUR(value)} EUR for {checksum(account)}; tx {sent.tx_hash}")


@banker.command("burn")
@click.argument("account")
@click.argument("amount")
@click.pass_obj
def banker_burn(s, account, amount):
    """Burn AMOUNT EUR that ACCOUNT locked (after paying them out)."""
    _banker_op(s, "burn", account, amount)


@banker.command("release")
@click.argument("account")
@click.argument("amount")
@click.pass_obj
def banker_release(s, account, amount):
    """Return AMOUNT EUR of ACCOUNT's locked eEuro to it."""
    _banker_op(s, "release", account, amount)


@banker.command("mint")
@click.argument("account")
@click.argument("amount")
@click.pass_obj
def banker_mint(s, account, amount):
    """Mint AMOUNT EUR to ACCOUNT against euros received."""
    _banker_op(s, "mint", account, amount)


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
