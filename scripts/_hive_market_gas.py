"""Gas rows of the hive market (SPEC §8, issue 13) for `ape run gas_report`: full-transaction
gas (`receipt.gas_used`, the 21,000 base and calldata included) of a 128-worker period settled
in one transaction and in two batches of 64, per worker and period, plus the owner's and the
workers' operations (open, enrol, tariffs, deposit, prepay, withdraw, forecast).

The hive is what a running one looks like: 128 meters (the Beekeeper's bound), 64 producers
and 64 consumers, every consumer prepaid (none short), the owner's deposit funded, periods
already settled before the measured one (every worker word written before: no 0 -> non-zero
store is measured as the steady state)."""

from __future__ import annotations

from ape import accounts, chain, project

from scripts._beekeeper import deploy_beekeeper
from scripts._gas import GasRow, row

SECTION = "Hive market (queen settlement, 128-worker hive)"
WORKERS = 128
PERIOD = 3_600
EUR = 10**6
KWH = 1_000
HVT = 10**18
PER_WORKER_TARGET = 6_000


def pack(index: int, produced: int = 0, consumed: int = 0) -> int:
    """One batch entry: `produced << 192 | consumed << 160 | index` (Wh; the worker's index in
    the hive, `worker(w).index`)."""
    return (produced << 192) | (consumed << 160) | index


def _hive(governance, treasury, owner):
    """A Beekeeper governed by `governance` (standing in for the Council), eEuro listed, a
    hive of 128 funded meter accounts owned by `owner`, and a HiveMarket on it."""
    hvt = governance.deploy(project.HiveToken, treasury)
    ent = governance.deploy(project.EnergyLedger, governance)
    eeuro = governance.deploy(project.EEuro, governance)
    eeuro.set_banker(governance, sender=governance)
    bk = deploy_beekeeper(governance, governance, hvt, ent).beekeeper
    bk.add_stablecoin(eeuro, "EUR", sender=governance)
    workers = []
    for i in range(WORKERS):
        w = accounts.test_accounts.generate_test_account()
        governance.transfer(w, 10**17)
        bk.add_meter(w, owner, f"HM{i}", "Acme", sender=governance)
        workers.append(w)
    hvt.transfer(owner, 100_000 * HVT, sender=treasury)
    hvt.approve(bk, 2**256 - 1, sender=owner)
    hive = bk.create_hive(eeuro, workers, sender=owner).return_value
    market = governance.deploy(project.HiveMarket, bk, governance)
    return eeuro, market, hive, workers


def _energy(period: int) -> list[tuple[int, int]]:
    """Even workers produce, odd ones consume; amounts vary by worker and period."""
    return [
        (3 * KWH + 7 * i + period, 0) if i % 2 == 0 else (0, 2 * KWH + 5 * i + period)
        for i in range(WORKERS)
    ]


def measure_hive_market(governance, treasury, owner, queen) -> list[GasRow]:
    eeuro, market, hive, workers = _hive(governance, treasury, owner)
    s = SECTION
    rows: list[GasRow] = []
    rows.append(row(s, "open_market", market.open_market(hive, PERIOD, queen, sender=owner)))
    tx = market.enrol(hive, workers, [20 * KWH] * WORKERS, sender=owner)
    rows.append(
        GasRow(
            s,
            f"enrol {WORKERS} workers: per worker",
            -(-tx.gas_used // WORKERS),
            note=f"{tx.gas_used:,} for the whole call (a Beekeeper meter check per worker; a "
            "new worker writes its profile, its `member` slot and half of a pair word, all "
            "zero -> non-zero: above a fixed 6,000,000 gas limit, enrol in calls of <= 90)",
        )
    )
    index = {w: market.worker(w).index for w in workers}
    eeuro.mint(owner, 10_000 * EUR, sender=governance)
    eeuro.approve(market, 2**256 - 1, sender=owner)
    rows.append(
        row(s, "deposit (the owner's first)", market.deposit(hive, 1_000 * EUR, sender=owner))
    )
    rows.append(row(s, "deposit (again)", market.deposit(hive, 1_000 * EUR, sender=owner)))
    consumers = workers[1::2]
    for i, w in enumerate(consumers):
        eeuro.mint(w, 100 * EUR, sender=governance)
        eeuro.approve(market, 2**256 - 1, sender=w)
        tx = market.prepay(40 * EUR, sender=w)
        if i == 0:
            rows.append(row(s, "prepay (first, the worker word already written by enrol)", tx))
    rows.append(row(s, "prepay (again)", market.prepay(EUR, sender=consumers[0])))

    def settle(period: int, parts: int):
        energy = _energy(period)
        p = sum(a for a, _ in energy)
        c = sum(b for _, b in energy)
        entries = [pack(index[w], a, b) for w, (a, b) in zip(workers, energy, strict=True)]
        size = WORKERS // parts
        return [
            market.submit(hive, period, p, c, entries[k : k + size], sender=queen)
            for k in range(0, WORKERS, size)
        ]

    chain.pending_timestamp += PERIOD
    settle(0, 1)  # the first settlement writes every worker's settled period from enrol's
    chain.pending_timestamp += PERIOD
    (one,) = settle(1, 1)
    rows.append(
        GasRow(
            s,
            f"submit: a {WORKERS}-worker period in one transaction, per worker and period",
            -(-one.gas_used // WORKERS),
            PER_WORKER_TARGET,
            note=f"{one.gas_used:,} for the transaction",
        )
    )
    chain.pending_timestamp += PERIOD
    two = settle(2, 2)
    total = sum(t.gas_used for t in two)
    rows.append(
        GasRow(
            s,
            f"submit: a {WORKERS}-worker period in two batches of 64, per worker and period",
            -(-total // WORKERS),
            PER_WORKER_TARGET,
            note=f"{two[0].gas_used:,} + {two[1].gas_used:,} (the first opens the period)",
        )
    )
    tx = market.set_tariffs(hive, 2200, 500, 1100, 1000, sender=owner)
    rows.append(row(s, "set_tariffs (from the next period)", tx))
    tx = market.post_forecast(market.current_period(hive) + 1, 1_500, sender=workers[0])
    rows.append(row(s, "post_forecast", tx))
    tx = market.withdraw(EUR, sender=consumers[1])
    rows.append(row(s, "withdraw (part of a prepaid balance, above the reserve)", tx))
    tx = market.withdraw_deposit(hive, 100 * EUR, sender=owner)
    rows.append(row(s, "withdraw_deposit", tx))
    # Every worker forecasts the period after next: the next period's settlement reads the
    # waiting forecasts (flag set), the one after scores them (reputation written).
    ahead = market.current_period(hive) + 1
    for w in workers:
        market.post_forecast(ahead, 1_000, sender=w)
    chain.pending_timestamp += PERIOD
    (waiting,) = settle(ahead - 1, 1)
    chain.pending_timestamp += PERIOD
    (scored,) = settle(ahead, 1)
    rows.append(
        GasRow(
            s,
            f"submit: a {WORKERS}-worker period in one transaction, every worker's forecast "
            "scored, per worker",
            -(-scored.gas_used // WORKERS),
            note=f"{scored.gas_used:,} for the transaction; the period before, with the "
            f"forecasts waiting: {-(-waiting.gas_used // WORKERS):,} per worker (the profile "
            "is read only for a worker whose forecast flag is set)",
        )
    )
    return rows
