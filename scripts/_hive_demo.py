"""The hive market part of `ape run demo` (SPEC §8, issue 13): a hive of a PV producer, two
households and a battery settles three virtual days in 3-hour periods at the default tariffs
(grid buy 20, grid sell 5, hive 10 cents per kWh). Prints per worker its energy, what it paid
or got, and the hive's autarky, next to what the same community would pay at grid tariffs
alone; saves a chart of the energy flows and the money (out/hive.png, matplotlib Agg).
Not an `ape run` entry point."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ape import chain  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from scripts._protocol import Protocol, governed  # noqa: E402

HVT = 10**18
EUR = 10**6
PERIOD = 3 * 3_600
PER_DAY = 24 * 3_600 // PERIOD
DAYS = 3
GRID_BUY, GRID_SELL = 20, 5  # cents per kWh: the default tariffs
NAMES = ("PV producer", "household A", "household B", "battery")
BATTERY_KWH, BATTERY_STEP = 10_000, 3_000  # Wh capacity, Wh per period at most
SUN = (1.0, 0.45, 0.9)  # day 2 is cloudy


def pack(index: int, produced: int = 0, consumed: int = 0) -> int:
    """A batch entry: the worker by its index in the hive (`worker(w).index`)."""
    return (produced << 192) | (consumed << 160) | index


def profile() -> list[tuple[int, int, int]]:
    """(PV Wh, household A Wh, household B Wh) per period over the three days."""
    out = []
    for day in range(DAYS):
        for k in range(PER_DAY):
            hour = k * PERIOD // 3_600 + 1.5  # the middle of the period
            sun = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
            pv = round(7_500 * sun * SUN[day])
            a = round(
                600
                + 900 * math.exp(-(((hour - 7.5) / 2) ** 2))
                + 1_400 * math.exp(-(((hour - 19.5) / 2) ** 2))
            )
            b = round(
                800
                + 500 * math.exp(-(((hour - 13.5) / 3) ** 2))
                + 1_000 * math.exp(-(((hour - 20.5) / 2) ** 2))
            )
            out.append((pv, a, b))
    return out


def run_hive_demo(protocol: Protocol, voters, people: dict, console: Console, out_dir: Path):
    """`people`: "treasury", "banker", "owner", "queen" and "meters" (four accounts: the PV,
    two households, the battery)."""
    console.rule("Hive market: three days of a PV producer, two households and a battery")
    bk, eeuro, hvt, market = (
        protocol.Beekeeper,
        protocol.EEuro,
        protocol.HiveToken,
        protocol.HiveMarket,
    )
    owner, queen, meters = people["owner"], people["queen"], people["meters"]
    for i, m in enumerate(meters):
        governed(protocol, voters, bk, "add_meter", m, owner, f"HV-{i:04d}", "Hive Power Pi")
    hvt.transfer(owner, 5_000 * HVT, sender=people["treasury"])
    hvt.approve(bk, 2**256 - 1, sender=owner)
    hive = bk.create_hive(eeuro, meters, sender=owner).return_value
    market.open_market(hive, PERIOD, queen, sender=owner)
    market.enrol(hive, meters, [20_000] * len(meters), sender=owner)
    for who, amount in ((owner, 50 * EUR), *((m, 20 * EUR) for m in meters)):
        eeuro.mint(who, amount, sender=people["banker"])
        eeuro.approve(market, 2**256 - 1, sender=who)
    market.deposit(hive, 50 * EUR, sender=owner)
    for m in meters[1:]:
        market.prepay(20 * EUR, sender=m)
    start = {m: market.worker(m).balance for m in meters}
    index = {m: market.worker(m).index for m in meters}
    deposit0 = market.deposit_of(hive)

    stored = 0
    flows = []  # per period: pv, a, b, battery net (+ discharge), grid import, grid export
    energy = {m: [0, 0] for m in meters}  # Wh produced, consumed
    money = {m: [] for m in meters}  # cumulative balance change per period
    matched_total = consumed_total = 0
    for period, (pv, a, b) in enumerate(profile()):
        surplus = pv - a - b
        if surplus > 0:
            charge = min(surplus, BATTERY_STEP, BATTERY_KWH - stored)
            rows = [(pv, 0), (0, a), (0, b), (0, charge)]
            stored += charge
            battery = -charge
        else:
            give = min(-surplus, BATTERY_STEP, stored)
            rows = [(pv, 0), (0, a), (0, b), (give, 0)]
            stored -= give
            battery = give
        p = sum(x for x, _ in rows)
        c = sum(y for _, y in rows)
        matched_total += min(p, c)
        consumed_total += c
        flows.append((pv, a, b, battery, max(c - p, 0), max(p - c, 0)))
        chain.pending_timestamp = max(
            chain.pending_timestamp, market.market(hive).start + (period + 1) * PERIOD
        )
        entries = [pack(index[m], x, y) for m, (x, y) in zip(meters, rows, strict=True)]
        market.submit(hive, period, p, c, entries, sender=queen)
        for m, (x, y) in zip(meters, rows, strict=True):
            energy[m][0] += x
            energy[m][1] += y
            money[m].append(market.worker(m).balance - start[m])

    table = Table(title=f"{DAYS} days in {len(flows)} periods of 3 h, default tariffs")
    for col in (
        "worker",
        "produced kWh",
        "consumed kWh",
        "hive: paid (-) / got (+) €",
        "grid only €",
    ):
        table.add_column(col, justify="left" if col == "worker" else "right")
    hive_total = grid_total = 0
    for name, m in zip(NAMES, meters, strict=True):
        made, used = energy[m]
        got = money[m][-1]
        # Grid tariffs alone: every kWh bought at 20 c, every kWh sold at 5 c; without a
        # hive the battery has nothing to shift, so it is not in the grid-only total.
        battery = m == meters[-1]
        grid = 0 if battery else (made * GRID_SELL - used * GRID_BUY) * EUR // 100_000
        hive_total += got
        grid_total += grid
        table.add_row(
            name,
            f"{made / 1000:.1f}",
            f"{used / 1000:.1f}",
            f"{got / EUR:+.2f}",
            "—" if battery else f"{grid / EUR:+.2f}",
        )
    table.add_row("community", "", "", f"{hive_total / EUR:+.2f}", f"{grid_total / EUR:+.2f}")
    console.print(table)
    owner_delta = market.deposit_of(hive) - deposit0
    autarky = matched_total / consumed_total
    console.print(
        f"hive autarky {autarky:.1%} (matched {matched_total / 1000:.1f} of "
        f"{consumed_total / 1000:.1f} kWh consumed); the owner's deposit moved "
        f"{owner_delta / EUR:+.2f} € (the grid's side); the community saved "
        f"{(hive_total - grid_total) / EUR:.2f} € against grid tariffs alone"
    )
    held = eeuro.balanceOf(market)
    owed = sum(max(market.worker(m).balance, 0) for m in meters) + market.deposit_of(hive)
    owed += market.fees_owed(eeuro)
    assert held == owed, (held, owed)
    console.print(f"hive market holds {held / EUR:.2f} € = owed {owed / EUR:.2f} €: {held == owed}")
    path = out_dir / "hive.png"
    _chart(flows, money, meters, path)
    console.print(f"chart: {path}")
    return path


def _chart(flows, money, meters, path: Path) -> None:
    hours = [k * PERIOD / 3_600 for k in range(len(flows))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    width = PERIOD / 3_600 * 0.9
    pv = [f[0] / 1000 for f in flows]
    top.bar(hours, pv, width, align="edge", color="gold", label="PV production")
    top.bar(
        hours,
        [-f[1] / 1000 for f in flows],
        width,
        align="edge",
        color="tab:blue",
        label="household A",
    )
    top.bar(
        hours,
        [-f[2] / 1000 for f in flows],
        width,
        align="edge",
        bottom=[-f[1] / 1000 for f in flows],
        color="tab:cyan",
        label="household B",
    )
    top.step(
        hours,
        [f[3] / 1000 for f in flows],
        where="post",
        color="tab:green",
        label="battery (+ discharge)",
    )
    top.step(
        hours, [f[4] / 1000 for f in flows], where="post", color="tab:red", label="grid import"
    )
    top.step(
        hours, [-f[5] / 1000 for f in flows], where="post", color="tab:purple", label="grid export"
    )
    top.axhline(0, color="black", linewidth=0.5)
    top.set_ylabel("kWh per 3 h")
    top.set_title("Hive energy flows (production up, consumption down)")
    top.legend(loc="upper right", fontsize=8, ncol=3)
    for name, m in zip(NAMES, meters, strict=True):
        bottom.plot(hours, [x / EUR for x in money[m]], label=name)
    bottom.axhline(0, color="black", linewidth=0.5)
    bottom.set_ylabel("€ (cumulative paid - / got +)")
    bottom.set_xlabel("hour")
    bottom.set_title("Money through the hive market")
    bottom.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
