"""The hive market (SPEC §8) on titanoboa: the same sources Ape compiles, run in process
(tests/fuzz/boa_env.py), so pure settlement logic costs milliseconds. A Beekeeper behind its
proxy provides the hive, its meters (workers), its owner and its coin (6 decimals, like eEuro).

Tariffs are in 1e-4 coin units per kWh: defaults grid buy 2000 (20 cents), grid sell 500,
hive buy 1000, hive sell 1000. 1 cent = 10,000 base units of a 6-decimals coin, so a Wh at
10 cents/kWh costs 100 base units.
"""

import boa
import pytest

from tests.beekeeper_helpers import HIVE_COST, HVT, METER_COST
from tests.fuzz import boa_env

EUR = 10**6
KWH = 1000
PERIOD = 3600


# Each worker's index in its hive (`worker(w).index`), filled as World enrols them.
INDEX: dict[str, int] = {}


def pack(worker, produced=0, consumed=0):
    """A batch entry `produced << 192 | consumed << 160 | index`; `worker` is an enrolled
    worker's address or an index."""
    index = worker if isinstance(worker, int) else INDEX[worker]
    return (produced << 192) | (consumed << 160) | index


class World:
    def __init__(self, n_workers=4, extra_meters=1):
        self.gov = boa.env.generate_address("governance")
        self.treasury = boa.env.generate_address("treasury")
        self.owner = boa.env.generate_address("hive_owner")
        self.other_owner = boa.env.generate_address("other_owner")
        self.queen = boa.env.generate_address("queen")
        self.attacker = boa.env.generate_address("attacker")
        self.fee_to = boa.env.generate_address("fee_to")
        self.workers = boa_env.accounts(n_workers, "worker")
        self.outsider = boa_env.accounts(extra_meters, "outsider")
        with boa.env.prank(self.gov):
            self.hvt = boa_env.deployer("HiveToken").deploy(self.treasury)
            self.coin = boa_env.deployer("MockToken").deploy("EUR", 6)
            ent = boa_env.deployer("MockToken").deploy("ENT", 18)
            blueprint = boa_env.deployer("OrderBook").deploy_as_blueprint()
            v1 = boa_env.deployer("Beekeeper").deploy()
            init = v1.initialize.prepare_calldata(
                self.gov, self.hvt.address, ent.address, blueprint.address, HIVE_COST, METER_COST
            )
            proxy = boa_env.deployer("BeekeeperProxy").deploy(v1.address, init)
        self.bk = boa_env.quiet(boa_env.deployer("Beekeeper").at(proxy.address))
        with boa.env.prank(self.gov):
            self.bk.add_stablecoin(self.coin.address, "EUR")
            for i, m in enumerate(self.workers):
                self.bk.add_meter(m, self.owner, f"SN{i}", "Acme")
            for i, m in enumerate(self.outsider):
                self.bk.add_meter(m, self.other_owner, f"OX{i}", "Acme")
        for o in (self.owner, self.other_owner):
            self.hvt.transfer(o, 100_000 * HVT, sender=self.treasury)
            self.hvt.approve(self.bk.address, 2**256 - 1, sender=o)
        self.hive = self.bk.create_hive(self.coin.address, self.workers, sender=self.owner)
        self.other_hive = self.bk.create_hive(
            self.coin.address, self.outsider, sender=self.other_owner
        )
        with boa.env.prank(self.gov):
            self.market = boa_env.quiet(
                boa_env.deployer("HiveMarket").deploy(self.bk.address, self.gov)
            )
        m = self.market
        m.open_market(self.hive, PERIOD, self.queen, sender=self.owner)
        m.enrol(self.hive, self.workers, [20 * KWH] * n_workers, sender=self.owner)
        INDEX.update({w: m.worker(w).index for w in self.workers})
        for a in [*self.workers, self.owner, self.attacker]:
            self.coin.mint(a, 1_000 * EUR, sender=a)
            self.coin.approve(m.address, 2**256 - 1, sender=a)

    def fund(self, amounts, deposit=100 * EUR):
        for w, a in zip(self.workers, amounts, strict=False):
            if a:
                self.market.prepay(a, sender=w)
        if deposit:
            self.market.deposit(self.hive, deposit, sender=self.owner)

    def end_period(self):
        boa.env.time_travel(seconds=PERIOD)

    def balance(self, w):
        return self.market.worker(w).balance

    def held(self):
        return self.coin.balanceOf(self.market.address)

    def assert_conserved(self):
        """Coin held = positive worker balances + owner deposits + fees owed."""
        m = self.market
        positive = sum(max(self.balance(w), 0) for w in self.workers)
        owed = m.deposit_of(self.hive) + m.deposit_of(self.other_hive)
        assert self.held() == positive + owed + m.fees_owed(self.coin.address)


@pytest.fixture
def world():
    with boa.env.anchor():
        yield World()


def settle(world, entries, production, consumption, period=None):
    m = world.market
    period = m.market(world.hive).next_period if period is None else period
    m.submit(world.hive, period, production, consumption, entries, sender=world.queen)
    return m.get_logs()


def test_worked_example_surplus(world):
    """Producers 10 and 6 kWh, consumers 4 and 8 kWh, default tariffs.
    P = 16 kWh, C = 12 kWh, matched = min(P, C) = 12 kWh: all consumption is bought in the hive.
      consumer 4 kWh x 10 c = 40 c = 400,000; consumer 8 kWh x 10 c = 800,000 (in: 1,200,000).
      producer shares of the 12 matched kWh pro rata: 10/16 x 12 = 7.5 kWh, 6/16 x 12 = 4.5 kWh;
      the rest, 2.5 and 1.5 kWh (4 kWh in all), is sold to the grid at 5 c.
      producer 10: 7.5 x 10 c + 2.5 x 5 c = 75 + 12.5 = 87.5 c = 875,000
      producer  6: 4.5 x 10 c + 1.5 x 5 c = 45 +  7.5 = 52.5 c = 525,000 (out: 1,400,000)
      the owner pays the 4 kWh sold to the grid: 4 x 5 c = 20 c = -200,000 on its deposit."""
    p1, p2, c1, c2 = world.workers
    world.fund([0, 0, 10 * EUR, 10 * EUR])
    world.end_period()
    dep0 = world.market.deposit_of(world.hive)
    batch = [
        pack(p1, produced=10 * KWH),
        pack(p2, produced=6 * KWH),
        pack(c1, consumed=4 * KWH),
        pack(c2, consumed=8 * KWH),
    ]
    settle(world, batch, 16 * KWH, 12 * KWH)
    assert world.balance(p1) == 875_000
    assert world.balance(p2) == 525_000
    assert world.balance(c1) == 10 * EUR - 400_000
    assert world.balance(c2) == 10 * EUR - 800_000
    assert world.market.deposit_of(world.hive) == dep0 - 200_000
    assert world.market.market(world.hive).next_period == 1
    world.assert_conserved()


def test_worked_example_deficit(world):
    """The mirror: producers 4 and 8 kWh, consumers 10 and 6 kWh. matched = 12 kWh.
    producers sell everything in the hive: 4 x 10 c = 400,000; 8 x 10 c = 800,000.
    consumers' shares of the matched 12 kWh: 7.5 and 4.5 kWh at 10 c, the rest
    (2.5 and 1.5 kWh) from the grid at 20 c:
    consumer 10: 75 c + 50 c = 1,250,000; consumer 6: 45 c + 30 c = 750,000 (in: 2,000,000)
    the owner collects the grid part and the difference: 2,000,000 - 1,200,000 = +800,000
    (4 kWh bought from the grid at 20 c = 80 c)."""
    p1, p2, c1, c2 = world.workers
    world.fund([0, 0, 10 * EUR, 10 * EUR])
    world.end_period()
    dep0 = world.market.deposit_of(world.hive)
    batch = [
        pack(p1, produced=4 * KWH),
        pack(p2, produced=8 * KWH),
        pack(c1, consumed=10 * KWH),
        pack(c2, consumed=6 * KWH),
    ]
    settle(world, batch, 12 * KWH, 16 * KWH)
    assert world.balance(p1) == 400_000
    assert world.balance(p2) == 800_000
    assert world.balance(c1) == 10 * EUR - 1_250_000
    assert world.balance(c2) == 10 * EUR - 750_000
    assert world.market.deposit_of(world.hive) == dep0 + 800_000
    world.assert_conserved()


def test_short_worker_pays_what_it_has_and_carries_debt(world):
    p1, p2, c1, c2 = world.workers
    world.fund([0, 0, 300_000, 10 * EUR])
    world.end_period()
    batch = [
        pack(p1, produced=10 * KWH),
        pack(p2, produced=6 * KWH),
        pack(c1, consumed=4 * KWH),
        pack(c2, consumed=8 * KWH),
    ]
    dep0 = world.market.deposit_of(world.hive)
    settle(world, batch, 16 * KWH, 12 * KWH)
    short = world.market.get_logs()
    events = [e for e in short if type(e).__name__ == "WorkerShort" or "WorkerShort" in str(e)]
    assert events, "a short worker must be reported"
    assert world.market.debt_of(c1) == 100_000
    assert world.balance(c1) == -100_000
    # The owner fronted the shortfall: it got only 300,000 of c1's 400,000.
    assert world.market.deposit_of(world.hive) == dep0 - 200_000 - 100_000
    world.assert_conserved()
    # A later prepayment repays the debt to the owner first.
    world.market.prepay(250_000, sender=c1)
    assert world.balance(c1) == 150_000
    assert world.market.deposit_of(world.hive) == dep0 - 200_000
    world.assert_conserved()


def test_three_way_pro_rata_rounding(world):
    """Three producers of 1 Wh each share a matched 2 Wh: cumulative floors give 0, 1, 1
    (floor(1*2/3)=0, floor(2*2/3)-0=1, 2-1=1), so exactly 2 Wh is matched; at 1 c/kWh
    (hive price 100) each matched Wh pays 0.001 c... rounded: producers down, the consumer up;
    the owner takes the exact residual and nothing is created."""
    p1, p2, p3, c1 = world.workers
    m = world.market
    m.set_tariffs(world.hive, 333, 1, 777, 777, sender=world.owner)
    world.fund([0, 0, 0, 10 * EUR])
    world.end_period()
    world.end_period()  # the change applies from period 1
    settle(world, [pack(p1, 1), pack(p2, 1), pack(p3, 1), pack(c1, consumed=2)], 3, 2)
    world.assert_conserved()
    settle(world, [pack(p1, 1), pack(p2, 1), pack(p3, 1), pack(c1, consumed=2)], 3, 2)
    # Period 1 at hive sell 777 (1e-4 EUR/kWh): 1 Wh -> 777 * 10**6 / 10**7 = 77.7 -> 77.
    bal = [world.balance(w) for w in (p1, p2, p3)]
    # Period 0 (defaults): shares 0,1,1 matched at 100 per Wh, 1,0,0 to the grid at 50.
    # Period 1: shares 0,1,1 at 77 (77.7 rounded down), 1,0,0 at 0 (0.1 rounded down).
    assert bal == [50 + 0, 100 + 77, 100 + 77]
    # The consumer: period 0 pays 2 Wh x 100 = 200; period 1: ceil(2 x 77.7) = 156.
    assert world.balance(c1) == 10 * EUR - 200 - 156
    world.assert_conserved()


def test_periods_in_order_once_and_only_when_over(world):
    w = world.workers
    m = world.market
    world.fund([10 * EUR] * 4)
    batch = [pack(x, consumed=KWH) for x in w]
    with boa.reverts("market: period not over"):
        m.submit(world.hive, 0, 0, 4 * KWH, batch, sender=world.queen)
    world.end_period()
    world.end_period()
    with boa.reverts("market: wrong period"):
        m.submit(world.hive, 1, 0, 4 * KWH, batch, sender=world.queen)
    m.submit(world.hive, 0, 0, 4 * KWH, batch, sender=world.queen)
    with boa.reverts("market: wrong period"):
        m.submit(world.hive, 0, 0, 4 * KWH, batch, sender=world.queen)
    m.submit(world.hive, 1, 0, 4 * KWH, batch, sender=world.queen)
    with boa.reverts("market: period not over"):
        m.submit(world.hive, 2, 0, 4 * KWH, batch, sender=world.queen)
    world.assert_conserved()


def test_batches_and_bad_entries(world):
    w = world.workers
    m = world.market
    world.fund([10 * EUR] * 4)
    world.end_period()
    # Entries name workers by their index in the hive: an index no worker of this hive has
    # (the other hive's worker has index 0 there, not here) is rejected, and so is the
    # address-style entry of a worker (bits 16..159 must be zero).
    m.open_market(world.other_hive, PERIOD, world.queen, sender=world.other_owner)
    m.enrol(world.other_hive, world.outsider, [20 * KWH], sender=world.other_owner)
    o = m.worker(world.outsider[0])
    assert (o.hive, o.index) == (world.other_hive, 0)
    assert m.member((world.other_hive << 16) | 0) == world.outsider[0]
    for index in (len(w), 2**16 - 1):
        with boa.reverts("market: not a worker of the hive"):
            m.submit(world.hive, 0, 0, KWH, [pack(index, consumed=KWH)], sender=world.queen)
    for entry in (int(w[0], 16), (1 << 224) | INDEX[w[0]], (KWH << 160) | (1 << 16)):
        with boa.reverts("market: bad entry"):
            m.submit(world.hive, 0, 0, KWH, [entry], sender=world.queen)
    with boa.reverts("market: above rated maximum"):
        m.submit(world.hive, 0, 0, 21 * KWH, [pack(w[0], consumed=21 * KWH)], sender=world.queen)
    # Two batches; a worker twice is rejected; the last batch must match the totals.
    m.submit(
        world.hive,
        0,
        KWH,
        3 * KWH,
        [pack(w[0], produced=KWH), pack(w[1], consumed=KWH)],
        sender=world.queen,
    )
    assert m.market(world.hive).open
    with boa.reverts("market: worker already settled"):
        m.submit(world.hive, 0, 0, 0, [pack(w[1], consumed=KWH)], sender=world.queen)
    with boa.reverts("market: period open"):
        m.enrol(world.hive, [], [], sender=world.owner)
    with boa.reverts("market: totals do not match"):
        m.submit(world.hive, 0, 0, 0, [pack(w[2], consumed=KWH), pack(w[3])], sender=world.queen)
    m.submit(
        world.hive,
        0,
        0,
        0,
        [pack(w[2], consumed=KWH), pack(w[3], consumed=KWH)],
        sender=world.queen,
    )
    assert not m.market(world.hive).open
    assert m.market(world.hive).next_period == 1
    world.assert_conserved()


def test_a_queen_that_is_not_the_hives(world):
    m = world.market
    world.end_period()
    entries = [pack(x) for x in world.workers]
    for who in (world.attacker, world.owner, world.workers[0], world.gov):
        with boa.reverts("market: not the queen"):
            m.submit(world.hive, 0, 0, 0, entries, sender=who)
    # Another hive's queen cannot submit for this one.
    m.open_market(world.other_hive, PERIOD, world.attacker, sender=world.other_owner)
    with boa.reverts("market: not the queen"):
        m.submit(world.hive, 0, 0, 0, entries, sender=world.attacker)
    m.submit(world.hive, 0, 0, 0, entries, sender=world.queen)


def test_privileged_functions_against_every_role(world):
    m = world.market
    w0 = world.workers[0]
    not_gov = (world.owner, world.queen, w0, world.attacker, world.other_owner)
    for who in not_gov:
        with boa.reverts("market: not governance"):
            m.set_fee(10, who, sender=who)
        with boa.reverts("market: not governance"):
            m.set_tariff_bounds(0, 5000, sender=who)
        with boa.reverts("market: not governance"):
            m.transfer_governance(who, sender=who)
    not_owner = (world.gov, world.queen, w0, world.attacker, world.other_owner)
    for who in not_owner:
        with boa.reverts("market: not the hive owner"):
            m.set_queen(world.hive, who, sender=who)
        with boa.reverts("market: not the hive owner"):
            m.set_tariffs(world.hive, 2000, 500, 1000, 1000, sender=who)
        with boa.reverts("market: not the hive owner"):
            m.enrol(world.hive, [], [], sender=who)
        with boa.reverts("market: not the hive owner"):
            m.remove_worker(world.hive, w0, sender=who)
        with boa.reverts("market: not the hive owner"):
            m.withdraw_deposit(world.hive, 0, sender=who)
    with boa.reverts("market: already open"):
        m.open_market(world.hive, PERIOD, world.queen, sender=world.owner)
    with boa.reverts("market: not a worker"):
        m.prepay(1, sender=world.attacker)
    with boa.reverts("market: not a worker"):
        m.post_forecast(5, 1, sender=world.attacker)
    # Governance can do what it may, within bounds.
    with boa.reverts("market: fee too high"):
        m.set_fee(1001, world.fee_to, sender=world.gov)
    m.set_fee(100, world.fee_to, sender=world.gov)
    m.set_tariff_bounds(100, 3000, sender=world.gov)
    with boa.reverts("market: tariff out of bounds"):
        m.set_tariffs(world.hive, 3001, 500, 1000, 1000, sender=world.owner)
    m.set_tariffs(world.hive, 3000, 500, 1000, 1000, sender=world.owner)


def test_fee_tariff_change_next_period_and_withdraw_reserve(world):
    p1, p2, c1, c2 = world.workers
    m = world.market
    m.set_fee(100, world.fee_to, sender=world.gov)  # 1%
    world.fund([0, 0, 10 * EUR, 10 * EUR])
    # Period 0 is running: the reserve is one period at the grid buy price, 20 kWh x 20 c.
    assert m.withdraw_reserve(c1) == 4 * EUR
    with boa.reverts("market: balance reserved"):
        m.withdraw(6 * EUR + 1, sender=c1)
    m.withdraw(EUR, sender=c1)
    m.set_tariffs(world.hive, 2000, 500, 1500, 1500, sender=world.owner)
    assert m.pending_tariffs(world.hive)[4] == 1
    world.end_period()
    entries = [pack(p1, produced=KWH), pack(p2), pack(c1, consumed=KWH), pack(c2)]
    dep0 = m.deposit_of(world.hive)
    settle(world, entries, KWH, KWH)  # period 0: the old hive prices, 10 c
    assert world.balance(c1) == 9 * EUR - 100_000
    assert world.balance(p1) == 100_000
    assert m.fees_owed(world.coin.address) == 1_000
    assert m.deposit_of(world.hive) == dep0 - 1_000
    world.end_period()
    settle(world, entries, KWH, KWH)  # period 1: the new ones, 15 c
    assert world.balance(p1) == 100_000 + 150_000
    assert m.fees_owed(world.coin.address) == 1_000 + 1_500
    world.assert_conserved()
    m.claim_fees(world.coin.address, sender=world.attacker)
    assert world.coin.balanceOf(world.fee_to) == 2_500
    world.assert_conserved()
    # Period 2 is running: the producer's 250,000 is below one period's reserve (4 EUR).
    assert m.withdraw_reserve(p1) == 4 * EUR
    with boa.reverts("market: balance reserved"):
        m.withdraw(1, sender=p1)


def test_forecasts_reputation_and_ranking(world):
    p1, p2, c1, c2 = world.workers
    m = world.market
    world.fund([0, 0, 10 * EUR, 10 * EUR])
    with boa.reverts("market: period started"):
        m.post_forecast(0, 1000, sender=p1)
    m.post_forecast(1, 2 * KWH, sender=p1)  # exact
    m.post_forecast(1, 0, sender=p2)  # off by 2 kWh of a 20 kWh rating: accuracy 0.9
    m.post_forecast(5, -KWH, sender=c1)  # a later period's: it waits through these two
    world.end_period()
    world.end_period()
    zero = [pack(x) for x in world.workers]
    settle(world, zero, 0, 0)
    entries = [
        pack(p1, produced=2 * KWH),
        pack(p2, produced=2 * KWH),
        pack(c1, consumed=4 * KWH),
        pack(c2),
    ]
    settle(world, entries, 4 * KWH, 4 * KWH)
    assert m.reputation(p1) == (10000, 1)
    assert m.reputation(p2) == (9000, 1)
    assert m.reputation(c1) == (0, 0)
    assert (m.worker(c1).forecast_period, m.worker(c1).forecast_wh) == (5, -KWH)
    assert m.worker(p1).forecast_period == -1
    ranked = m.ranking(world.hive, 16)
    assert [(r.worker, r.score) for r in ranked] == [(p1, 10000), (p2, 9000)]
    assert len(m.ranking(world.hive, 1)) == 1
    # A second scored forecast averages: off by 4 kWh of 20 (accuracy 8000), (3 x 10000 +
    # 8000) / 4 = 9500; the reputation lives in the worker's profile word.
    m.post_forecast(3, 6 * KWH, sender=p1)
    world.end_period()
    world.end_period()
    settle(world, zero, 0, 0)
    settle(world, entries, 4 * KWH, 4 * KWH)
    assert m.reputation(p1) == (9500, 2)
    world.assert_conserved()


def test_producer_in_debt_repays_the_owner_from_its_earnings(world):
    """A worker in debt that then produces: its earnings pay its debt back to the owner, who
    fronted it, before anything is credited. c1 owes 100,000 (it paid 300,000 of a 400,000
    bill); next period it produces 1.5 kWh, all matched in the hive at 10 c = 150,000: 100,000
    repays the owner, 50,000 is its balance. The owner pays the 150,000 and gets 100,000 back
    (c2 buys the 1.5 kWh at 10 c = 150,000, so the owner's deposit moves by +100,000)."""
    p1, p2, c1, c2 = world.workers
    m = world.market
    world.fund([0, 0, 300_000, 10 * EUR])
    world.end_period()
    batch = [
        pack(p1, produced=10 * KWH),
        pack(p2, produced=6 * KWH),
        pack(c1, consumed=4 * KWH),
        pack(c2, consumed=8 * KWH),
    ]
    settle(world, batch, 16 * KWH, 12 * KWH)
    assert m.debt_of(c1) == 100_000
    world.assert_conserved()
    world.end_period()
    dep0 = m.deposit_of(world.hive)
    batch = [pack(p1), pack(p2), pack(c1, produced=1500), pack(c2, consumed=1500)]
    settle(world, batch, 1500, 1500)
    assert world.balance(c1) == 50_000
    assert m.debt_of(c1) == 0
    assert m.deposit_of(world.hive) == dep0 + 100_000
    world.assert_conserved()
    # Its 50,000 is held for it: the coin the market holds is exactly what it owes.
    world.end_period()
    settle(world, [pack(p1), pack(p2), pack(c1), pack(c2)], 0, 0)
    assert m.withdraw_reserve(c1) <= 4 * EUR
    world.assert_conserved()


def test_removal_keeps_the_index_and_balance_and_re_enrolment_reuses_them(world):
    """Workers live two per storage word at a fixed index of their hive. A removed worker
    keeps its index and balance (withdrawable), its index is no worker any more,
    re-enrolment brings back the old index
    and balance, due from the hive's next period."""
    p1, p2, c1, c2 = world.workers
    m = world.market
    assert [m.worker(x).index for x in world.workers] == [0, 1, 2, 3]
    assert [m.member((world.hive << 16) | i) for i in range(4)] == list(world.workers)
    world.fund([0, 0, 10 * EUR, 10 * EUR])
    world.end_period()
    settle(world, [pack(p1, produced=KWH), pack(p2), pack(c1, consumed=KWH), pack(c2)], KWH, KWH)
    # Half submitted: the settled worker's view says so, the other's not; reserves follow.
    world.end_period()
    m.submit(world.hive, 1, 0, 0, [pack(p1), pack(c1)], sender=world.queen)
    assert m.worker(c1).settled_period == 1 and m.worker(c2).settled_period == 0
    assert m.withdraw_reserve(c2) == 2 * m.withdraw_reserve(c1) == 2 * 4 * EUR
    with boa.reverts("market: worker already settled"):
        m.submit(world.hive, 1, 0, 0, [pack(c2), pack(c1)], sender=world.queen)
    m.submit(world.hive, 1, 0, 0, [pack(c2), pack(p2)], sender=world.queen)
    assert [m.worker(x).settled_period for x in world.workers] == [1] * 4
    kept = world.balance(c1)
    assert kept == 10 * EUR - 100_000
    m.remove_worker(world.hive, c1, sender=world.owner)
    assert m.worker(c1).max_wh == 0 and m.worker(c1).index == 2
    assert m.market(world.hive).workers == 3
    world.end_period()
    with boa.reverts("market: not a worker of the hive"):
        m.submit(world.hive, 2, 0, 0, [pack(2)], sender=world.queen)
    with boa.reverts("market: not a worker"):
        m.prepay(1, sender=c1)
    # Removed: nothing reserved, the balance withdrawable.
    assert m.withdraw_reserve(c1) == 0
    m.withdraw(EUR, sender=c1)
    assert world.balance(c1) == kept - EUR
    settle(world, [pack(p1), pack(p2), pack(c2, consumed=KWH)], 0, KWH)
    world.assert_conserved()
    # Re-enrolled: index 2 again, the balance kept, due for period 3 (not the settled ones).
    m.enrol(world.hive, [c1], [5 * KWH], sender=world.owner)
    assert (m.worker(c1).index, m.worker(c1).max_wh) == (2, 5 * KWH)
    assert world.balance(c1) == kept - EUR and m.worker(c1).settled_period == 2
    with boa.reverts("market: already enrolled"):
        m.enrol(world.hive, [c1], [5 * KWH], sender=world.owner)
    with boa.reverts("market: wrong period"):
        m.submit(world.hive, 2, 0, 0, [pack(c1)], sender=world.queen)
    world.end_period()
    entries = [pack(p1), pack(p2), pack(c1, consumed=KWH), pack(c2)]
    with boa.reverts("market: above rated maximum"):
        m.submit(world.hive, 3, 0, 6 * KWH, [pack(c1, consumed=6 * KWH)], sender=world.queen)
    settle(world, entries, 0, KWH)
    assert world.balance(c1) == kept - EUR - 200_000
    world.assert_conserved()
