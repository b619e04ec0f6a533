"""The energy auction part of `ape run demo` (SPEC §10, issue 14 part 2): one auction of ENT
for eEuro with an outbid (the refund waits in the outbid bidder's free balance until they
withdraw it), a bid in the last minutes that extends the end, and the settlement, in kWh and
EUR. Not an `ape run` entry point."""

from __future__ import annotations

from ape import chain
from rich.console import Console
from rich.table import Table

from scripts._auction import EUR, KWH, escrow_of
from scripts._protocol import Protocol


def _eur(amount: int) -> str:
    return f"{amount / EUR:,.6f} EUR"


def _price(price: int) -> str:
    return f"{price / EUR:.6f} EUR/kWh"


def run_auction_demo(protocol: Protocol, people: list, fund, console: Console) -> None:
    """`people`: a seller and two bidders; `fund(account, ent, eur)` gives an account ENT
    (stored energy) and eEuro (from the banker)."""
    console.rule("Energy auction: 25 kWh of ENT for eEuro (English, escrowed)")
    house, ent, eeuro = protocol.EnergyAuction, protocol.EnergyLedger, protocol.EEuro
    seller, bob, carol = people
    fund(seller, 25 * KWH, EUR)
    for who in (bob, carol):
        fund(who, 0, 20 * EUR)
        eeuro.approve(house, 2**256 - 1, sender=who)
    ent.approve(house, 25 * KWH, sender=seller)
    params = house.parameters()
    console.print(
        f"rules: minimum increment {params.increment / 10**16:g}%, a bid in the last "
        f"{params.window // 60} min moves the end to {params.window // 60} min after it, "
        f"at most {params.cap // 60} min in total (set by Council vote)"
    )

    start = chain.pending_timestamp
    tx = house.create(25 * KWH, 120_000, start + 3_600, sender=seller)
    auction_id = tx.return_value
    table = Table(title=f"Auction {auction_id}: bids")
    for col in ("time", "step", "price", "escrow", "ends at", "outbid bidder's free balance"):
        table.add_column(col, justify="left" if col in ("time", "step") else "right")

    def at(seconds: int) -> None:
        chain.pending_timestamp = max(start + seconds, chain.pending_timestamp)

    def mmss(t: int) -> str:
        return f"{(t - start) // 60:+d}:{(t - start) % 60:02d}"

    def show(label: str, tx, bidder=None) -> None:
        ev = tx.events[0]
        outbid = "—" if ev.outbid == "0x" + "0" * 40 else _eur(house.credit_of(ev.outbid))
        table.add_row(
            mmss(chain.blocks.head.timestamp),
            label,
            _price(ev.price),
            _eur(ev.escrow),
            mmss(ev.ends_at),
            outbid,
        )

    table.add_row(
        mmss(start),
        "seller offers 25 kWh, reserve 0.12 EUR/kWh",
        "—",
        "—",
        mmss(start + 3_600),
        "—",
    )
    at(600)
    show("bob bids the reserve", house.bid(auction_id, 120_000, sender=bob))
    at(1_200)
    assert house.min_bid(auction_id) == 122_400
    show("carol outbids (+2%)", house.bid(auction_id, 122_400, sender=carol))
    refund = house.credit_of(bob)
    house.withdraw(refund, sender=bob)
    table.add_row(mmss(chain.blocks.head.timestamp), f"bob withdraws {_eur(refund)}", *[""] * 4)
    at(3_600 - 120)
    price = house.min_bid(auction_id)
    show("bob, 2 min before the end: extends", house.bid(auction_id, price, sender=bob))
    end = house.auction(auction_id).ends_at
    at(end - start - 60)
    show(
        "carol, 1 min before: extends",
        house.bid(auction_id, house.min_bid(auction_id), sender=carol),
    )
    console.print(table)

    end = house.auction(auction_id).ends_at
    at(end - start)
    v = house.auction(auction_id)
    tx = house.settle(auction_id, sender=bob)
    ev = tx.events[0]
    assert ev.payment == escrow_of(25 * KWH, v.price)
    console.print(
        f"settled by bob at {mmss(end)}: {ev.amount / KWH:g} kWh to carol at {_price(ev.price)}, "
        f"{_eur(ev.payment)} to the seller"
    )
    refund = house.credit_of(bob)
    house.withdraw(refund, sender=bob)
    result = Table(title="After the settlement")
    for col in ("account", "ENT (kWh)", "eEuro", "free balance in the house"):
        result.add_column(col, justify="left" if col == "account" else "right")
    for label, who in (("seller", seller), ("bob", bob), ("carol", carol), ("house", house)):
        result.add_row(
            label,
            f"{ent.balanceOf(who) / KWH:,.3f}",
            _eur(eeuro.balanceOf(who)),
            _eur(house.credit_of(who)) if who != house else "—",
        )
    console.print(result)
    held = eeuro.balanceOf(house)
    owed = sum(house.credit_of(w) for w in (seller, bob, carol))
    console.print(
        f"house holds {ent.balanceOf(house) / KWH:g} ENT and {_eur(held)} = free balances owed "
        f"{_eur(owed)}: {held == owed}"
    )
