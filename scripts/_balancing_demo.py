"""The balancing market part of `ape run demo` (SPEC §9, issue 14 part 1): the Council seeds
the market from its own eEuro and whitelists two producers and two consumers by vote; a keeper
opens the coming slots; one 15-minute slot fills with commitments (the price after each, and a
quote before one), a consumer cancels at the price it moves back; the storage unit certifies
what was really produced and consumed after the slot, and under-delivery is refunded pro rata.
A chart of the price against the slot's imbalance is saved as PNG. Not an `ape run` entry
point."""

from __future__ import annotations

from pathlib import Path

from ape import chain
from rich.console import Console
from rich.table import Table

from scripts._balancing import EEURO, SLOT_LENGTH, seed_from_council
from scripts._protocol import Protocol, governed

BIG = 2**256 - 1
SIDES = ("produce", "consume")


def _eur(amount: int) -> str:
    return f"{amount / EEURO:,.6f} EUR"


def _per_kwh(price: int) -> str:
    return f"{price / EEURO:.3f} EUR/kWh"


def price_chart(market, slot: int, points: list[tuple[int, int]], path: Path) -> Path:
    """The slot's price per kWh against its imbalance (production - consumption, kWh): the
    governed staircase from the parameters, and the price after each commitment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = market.parameters(market.slot_info(slot).version)
    span = (p.max_price - p.min_price) // p.price_step * p.step_wh + 10 * p.step_wh
    xs = list(range(-span, span + 1, max(1, p.step_wh)))

    def price_at(k: int) -> float:
        unclamped = p.base_price - p.price_step * (k // p.step_wh)
        return min(max(unclamped, p.min_price), p.max_price) / EEURO

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step([x / 1000 for x in xs], [price_at(x) for x in xs], where="post", label="price curve")
    ax.plot(
        [imb / 1000 for imb, _ in points],
        [price / EEURO for _, price in points],
        "o",
        color="tab:red",
        label="the slot after each step (numbered)",
    )
    for i, (imb, price) in enumerate(points):
        ax.annotate(str(i), (imb / 1000, price / EEURO), textcoords="offset points", xytext=(5, 5))
    ax.axvline(0, color="grey", lw=0.5)
    ax.axhline(p.base_price / EEURO, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("imbalance: committed production - consumption (kWh)")
    ax.set_ylabel("price (EUR/kWh)")
    ax.set_title(f"Balancing market, slot {slot}: cheaper with surplus, dearer with deficit")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def run_balancing_demo(protocol: Protocol, voters, people: dict, out_dir: Path, console: Console):
    """`people`: banker, unit (an active storage unit), keeper, p1, p2 (producers), c1, c2
    (consumers)."""
    console.rule("Balancing market: one 15-minute slot, priced by its imbalance")
    market, eeuro, council = protocol.BalancingMarket, protocol.EEuro, protocol.Council
    banker, unit = people["banker"], people["unit"]
    producers, consumers = [people["p1"], people["p2"]], [people["c1"], people["c2"]]
    names = {people[k]: k for k in ("p1", "p2", "c1", "c2")}

    # The Council's treasury holds eEuro like any account; it seeds the market by two votes.
    eeuro.mint(council, 300 * EEURO, sender=banker)
    seed_from_council(lambda *call: governed(protocol, voters, *call), eeuro, market, 200 * EEURO)
    for who, roles in ((producers[0], 1), (producers[1], 1), (consumers[0], 2), (consumers[1], 2)):
        governed(protocol, voters, market, "set_member", who, roles)
        eeuro.mint(who, 50 * EEURO, sender=banker)
        eeuro.approve(market, BIG, sender=who)
        market.deposit(20 * EEURO, sender=who)
    p = market.parameters(0)
    console.print(
        f"seed {_eur(market.seed())} from the Council; base {_per_kwh(p.base_price)}, "
        f"clamped to [{_per_kwh(p.min_price)}, {_per_kwh(p.max_price)}], moving "
        f"{_per_kwh(p.price_step)} every {p.step_wh} Wh of imbalance (set by Council vote)"
    )

    slot = market.current_slot() + 2
    market.open_slots(slot, 4, sender=people["keeper"])
    quote = market.quote(slot, 1, 4_000)
    console.print(f"quote for consuming 4 kWh in slot {slot} before anything: {_eur(quote)}")
    table = Table(title=f"Slot {slot} fills (starts at unix {market.slot_start(slot)})")
    for col in ("who", "commits", "kWh", "paid / reserved", "avg EUR/kWh", "imbalance", "price"):
        table.add_column(col, justify="left" if col in ("who", "commits") else "right")
    points = [(0, market.price(slot))]
    plan = [
        (consumers[0], 1, 4_000),
        (producers[0], 0, 6_000),
        (consumers[1], 1, 9_000),
        (producers[1], 0, 3_000),
        (producers[0], 0, 2_500),
        (consumers[1], 1, 1_500),
    ]
    for who, side, wh in plan:
        tx = market.commit(slot, side, wh, unit, 0 if side == 0 else BIG, sender=who)
        ev = tx.events[0]
        imb = ev.production_wh - ev.consumption_wh
        price = market.price(slot)
        points.append((imb, price))
        table.add_row(
            names[who],
            SIDES[side],
            f"{wh / 1000:g}",
            _eur(ev.amount),
            _per_kwh(ev.amount * 1000 // wh),
            f"{imb / 1000:+g} kWh",
            _per_kwh(price),
        )
    tx = market.cancel(slot, 1, sender=consumers[0])
    ev = tx.events[0]
    info = market.slot_info(slot)
    table.add_row(
        "c1",
        "cancels",
        f"{ev.wh / 1000:g}",
        f"{_eur(ev.held)} back at {_eur(ev.unwind)}",
        "",
        f"{info.imbalance_wh / 1000:+g} kWh",
        _per_kwh(info.price),
    )
    points.append((info.imbalance_wh, info.price))
    console.print(table)
    chart = price_chart(market, slot, points, out_dir / "balancing_price.png")
    console.print(f"price against imbalance saved to {chart}")

    # After the slot the unit certifies the metered energy of each commitment.
    chain.pending_timestamp = max(chain.pending_timestamp, (slot + 1) * SLOT_LENGTH)
    # p1 over-delivers (paid as committed), p2 and c2 fall short (paid / refunded pro rata).
    delivered = {producers[0]: 9_000, producers[1]: 1_800, consumers[1]: 7_000}
    result = Table(title=f"Slot {slot}: delivery certified by the storage unit")
    for col in ("who", "side", "committed kWh", "delivered kWh", "credited", "to the seed"):
        result.add_column(col, justify="left" if col in ("who", "side") else "right")
    for who, got in delivered.items():
        side = 0 if who in producers else 1
        ev = market.certify(who, slot, side, got, sender=unit).events[0]
        result.add_row(
            names[who],
            "paid" if side == 0 else "refunded",
            f"{ev.committed_wh / 1000:g}",
            f"{got / 1000:g}",
            _eur(ev.credited),
            _eur(ev.to_seed),
        )
    console.print(result)
    members = [*producers, *consumers]
    free = sum(market.balance_of(w) for w in members)
    held = eeuro.balanceOf(market)
    info = market.slot_info(slot)
    console.print(
        f"market holds {_eur(held)} = free balances {_eur(free)} + escrow {_eur(info.escrow)} "
        f"+ reserved {_eur(info.reserved)} + seed {_eur(market.seed())}: "
        f"{held == free + info.escrow + info.reserved + market.seed()}"
    )
