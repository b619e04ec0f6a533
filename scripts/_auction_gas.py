"""Gas rows of the energy auction (SPEC §10, issue 14 part 2) for `ape run gas_report`:
full-transaction gas (`receipt.gas_used`) of create, bid (first, outbidding: paid from the free
balance or by `transferFrom`, the outbid bidder new to the house or not; with an extension),
deposit, withdraw, settle (with and without a bid) and cancel, on the protocol as deployed
(the Council governs, the house checks the Beekeeper's stablecoin list at `create`).

The state is what a running community has: the house already escrows ENT and eEuro of other
auctions, bidders gave the house an unlimited eEuro allowance once, sellers hold eEuro.

The notes of the rows that miss their target give the lower bound of the scenario, from the
costs the house cannot change (measured with `debug_traceTransaction`, cancun): the 21,000
base and the calldata; the coin's own call (eEuro `transferFrom` from a holder to the house,
17,855 with the cold account; `transfer` between two holders, 15,497: two balance words of
2,100 + 2,900, the Transfer event, eEuro's lock); ENT's `transfer` to a new holder, 32,244
(20,000 of it the winner's balance word created); and the storage each operation must change:
a cold word read is 2,100, rewritten 2,900 more, created 20,000 more, and a word cleared
refunds 4,800 (at most a fifth of the gas)."""

from __future__ import annotations

from ape import chain

from scripts._auction import EUR, KWH, WINDOW
from scripts._gas import GasRow, row
from scripts._protocol import deploy_protocol, governed

SECTION = "Energy auction (ENT for eEuro)"
HOUR = 3_600


def measure_auction(deployer, banker, unit, people: list) -> list[GasRow]:
    """`people`: six funded accounts (two sellers, four bidders)."""
    p = deploy_protocol(deployer)
    governed(p, [deployer], p.EEuro, "set_banker", banker)
    governed(p, [deployer], p.EnergyLedger, "register_storage_unit", unit, deployer)
    ledger, eeuro, house = p.EnergyLedger, p.EEuro, p.EnergyAuction
    seller, seller2, b1, b2, b3, b4 = people
    for who in (seller, seller2):
        ledger.energy_produced(who, 1_000_000, ledger.last_seq(unit) + 1, sender=unit)
        ledger.approve(house, 2**256 - 1, sender=who)
        eeuro.mint(who, EUR, sender=banker)
    for who in (b1, b2, b3, b4):
        eeuro.mint(who, 10_000 * EUR, sender=banker)
        eeuro.approve(house, 2**256 - 1, sender=who)

    def create(who, kwh=10, duration=HOUR):
        ends = chain.pending_timestamp + duration
        tx = house.create(kwh * KWH, 100_000, ends, sender=who)
        return tx.return_value, ends, tx

    s = SECTION
    rows: list[GasRow] = []
    a1, _, tx = create(seller)
    rows.append(
        row(s, "create (the house's first ENT)", tx, note="ENT balance of the house 0 → >0")
    )
    a2, end2, tx = create(seller2)
    rows.append(row(s, "create", tx, note="incl. the Beekeeper list check (staticcall via proxy)"))
    a3, end3, _ = create(seller, duration=2 * HOUR)
    house.bid(a1, 100_000, sender=b4)  # the house now escrows eEuro too

    tx = house.bid(a2, 100_000, sender=b1)
    rows.append(row(s, "bid, first (paid by transferFrom)", tx, 65_000))
    tx = house.bid(a2, 102_000, sender=b2)
    rows.append(
        row(
            s,
            "bid, outbidding (paid by transferFrom; the outbid bidder's first refund)",
            tx,
            50_000,
            note=(
                "unreachable: 21,000 + 368 calldata + 17,855 eEuro transferFrom + 5,000 the bid"
                " word + 22,100 the outbid bidder's credit word created + 2,100 the auction's"
                " terms + 2,100 the bidder's free balance = 70,523 before the event and the lock"
            ),
        )
    )
    tx = house.bid(a2, 104_040, sender=b1)
    rows.append(
        row(
            s,
            "bid, outbidding (its free balance pays part, transferFrom the rest; outbid new)",
            tx,
            50_000,
            note=(
                "unreachable: the row above's 70,523 + 2,900 (the bidder's free balance"
                " rewritten) = 73,423"
            ),
        )
    )
    tx = house.deposit(100 * EUR, sender=b3)
    rows.append(row(s, "deposit (an account new to the house)", tx))
    tx = house.deposit(100 * EUR, sender=b2)
    rows.append(row(s, "deposit (an account known to the house)", tx))
    tx = house.bid(a2, 106_121, sender=b2)
    rows.append(
        row(s, "bid, outbidding (paid from the free balance; outbid bidder known)", tx, 50_000)
    )
    tx = house.bid(a2, 108_244, sender=b1)
    rows.append(
        row(
            s,
            "bid, outbidding (its free balance pays part, transferFrom the rest; outbid known)",
            tx,
            50_000,
            note=(
                "unreachable: the row below's 53,423 + 2,900 (the free balance rewritten) = 56,323"
            ),
        )
    )
    tx = house.bid(a2, 110_409, sender=b4)
    rows.append(
        row(
            s,
            "bid, outbidding (paid by transferFrom; the outbid bidder known)",
            tx,
            50_000,
            note=(
                "unreachable: 21,000 + 368 calldata + 17,855 eEuro transferFrom + 5,000 the bid"
                " word (bidder and price: a full word) + 5,000 the outbid bidder's credit word +"
                " 2,100 the auction's terms (a second word: 240 bits) = 51,323 > 50,000; + 2,100"
                " the bidder's free balance (spent first) = 53,423; the rest: event 2,899, lock 300"
            ),
        )
    )
    chain.pending_timestamp = end3 - WINDOW // 2
    house.bid(a3, 100_000, sender=b2)
    chain.pending_timestamp = end3 - WINDOW // 2 + 10
    tx = house.bid(a3, 102_000, sender=b3)
    rows.append(
        row(s, "bid, outbidding in the last window (end extended; from the balance)", tx, 50_000)
    )
    tx = house.withdraw(EUR, sender=b2)
    rows.append(
        row(
            s,
            "withdraw (part of a refund, to an eEuro holder)",
            tx,
            35_000,
            note=(
                "unreachable: 21,000 + 228 calldata + 15,497 eEuro transfer = 36,725 > 35,000"
                " before the house's own credit word (5,000), event (1,637) and lock (300)"
            ),
        )
    )
    tx = house.withdraw(house.credit_of(b2), sender=b2)
    rows.append(
        row(
            s,
            "withdraw (the whole free balance)",
            tx,
            35_000,
            note=(
                "unreachable: 21,000 + 240 calldata + 15,497 eEuro transfer + 2,100 + 2,900"
                " - 4,800 (the credit word read and cleared) = 36,937"
            ),
        )
    )

    a4, _, _ = create(seller2)
    tx = house.cancel(a4, sender=seller2)
    rows.append(row(s, "cancel (before the first bid)", tx))

    chain.pending_timestamp = max(end2, chain.pending_timestamp)
    tx = house.settle(a2, sender=b4)
    rows.append(
        row(
            s,
            "settle (the winner's first ENT, seller holds eEuro)",
            tx,
            70_000,
            note=(
                "unreachable: 21,000 + 192 calldata + 32,244 ENT transfer (the winner's balance"
                " created: 22,100) + 15,497 eEuro transfer + 3 × (2,100 + 2,900 - 4,800) the"
                " auction's three words read and cleared + 300 lock = 69,833; any event (a LOG1:"
                " 750) makes it 70,583"
            ),
        )
    )
    chain.pending_timestamp = max(end3 + WINDOW, chain.pending_timestamp)
    tx = house.settle(a1, sender=b4)
    rows.append(row(s, "settle (winner already holds ENT, seller holds eEuro)", tx, 70_000))
    tx = house.settle(a3, sender=b4)
    rows.append(
        row(
            s,
            "settle (the winner's first ENT, after an extension)",
            tx,
            70_000,
            note=(
                "the first settle row's work (88,462 before refunds), cheaper because this"
                " is the house's last ENT: its ENT balance is cleared too, and the refund hits"
                " its cap (a fifth: 17,692); 70,000 needs 962 less before refunds, i.e."
                " AuctionSettled without seller, amount, price and payment (not done)"
            ),
        )
    )
    a5, end5, _ = create(seller)
    chain.pending_timestamp = end5
    tx = house.settle(a5, sender=b4)
    rows.append(row(s, "settle without a bid (ENT back to the seller)", tx))
    tx = governed(p, [deployer], house, "set_parameters", 3 * 10**16, WINDOW, 2 * HOUR)
    rows.append(row(s, "set_parameters through a Council vote (1 voter)", tx))
    return rows
