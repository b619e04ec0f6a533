"""The balancing market (SPEC §9, issue 14 part 1) on titanoboa (tests/fuzz/boa_env.py): the
real EnergyLedger (whose active storage units certify delivery) and the real eEuro, the
Council stood in for by one governance account (its votes are tested in tests/e2e).

Default parameters (scripts/_balancing.py): base 0.25 EUR/kWh, min 0.05, max 0.60, the price
moves 0.001 EUR/kWh every 100 Wh of imbalance. On the grid of one eEuro base unit per Wh the
price of the Wh between imbalance k and k + 1 is `clamp(250 - floor(k / 100), 50, 600)` base
units; a producer is paid, a consumer charged, the sum of it over the Wh it moves
(tests/balancing_model.py computes that sum block by block).
"""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import balancing_model as model
from tests.fuzz import boa_env

EUR = 10**6
L = 900  # slot length
BIG = 2**256 - 1
P = model.Params()
PRODUCE, CONSUME = 0, 1
GOV_ONLY = "balancing: only by Council vote"
T0 = 1_800_000_000 - 1_800_000_000 % L  # a slot boundary


def names(contract) -> list[tuple]:
    """The last call's events emitted by `contract` as (name, *fields) (the token's own
    Transfer events of a deposit or withdrawal are left out)."""
    return [(type(e).__name__, *e[1:]) for e in contract.get_logs() if e[0] == contract.address]


class World:
    def __init__(self):
        self.gov = boa.env.generate_address("bal-council")
        self.banker, self.unit, self.unit2, self.unit_owner = boa_env.accounts(4, "bal-admin")
        self.p1, self.p2 = boa_env.accounts(2, "bal-producer")
        self.c1, self.c2 = boa_env.accounts(2, "bal-consumer")
        self.both, self.outsider, self.fake_unit = boa_env.accounts(3, "bal-other")
        boa.env.evm.patch.timestamp = T0
        with boa.env.prank(self.gov):
            self.ledger = boa_env.quiet(boa_env.deployer("EnergyLedger").deploy(self.gov))
            self.eeuro = boa_env.quiet(boa_env.deployer("EEuro").deploy(self.gov))
            self.m = boa_env.quiet(
                boa_env.deployer("BalancingMarket").deploy(
                    self.eeuro.address, self.ledger.address, self.gov, L
                )
            )
            self.ledger.register_storage_unit(self.unit, self.unit_owner)
            self.ledger.register_storage_unit(self.unit2, self.unit_owner)
            self.eeuro.set_banker(self.banker)
            self.m.set_parameters(*P.args())
            self.eeuro.mint(self.gov, 10_000 * EUR, sender=self.banker)
            self.eeuro.approve(self.m.address, BIG)
            self.m.fund(1_000 * EUR)
        self.members = [self.p1, self.p2, self.c1, self.c2, self.both]
        for who, roles in ((self.p1, 1), (self.p2, 1), (self.c1, 2), (self.c2, 2), (self.both, 3)):
            self.m.set_member(who, roles, sender=self.gov)
        for who in [*self.members, self.outsider]:
            self.eeuro.mint(who, 1_000 * EUR, sender=self.banker)
            self.eeuro.approve(self.m.address, BIG, sender=who)
            if who != self.outsider:
                self.m.deposit(100 * EUR, sender=who)
        self.slots: set[int] = set()

    def now_slot(self) -> int:
        return boa.env.evm.patch.timestamp // L

    def at(self, t: int) -> None:
        boa.env.evm.patch.timestamp = t

    def commit(self, who, slot, side, wh, unit=None, limit=None):
        self.slots.add(slot)
        if limit is None:
            limit = 0 if side == PRODUCE else BIG
        return self.m.commit(slot, side, wh, unit or self.unit, limit, sender=who)

    def imbalance(self, slot) -> int:
        return self.m.slot_info(slot).imbalance_wh

    def assert_conserved(self, extra_slots=()):
        """The market's eEuro = free balances + every slot's escrow and reserve + free seed;
        each slot's escrow / reserve is the sum of its commitments' amounts."""
        m = self.m
        free = sum(m.balance_of(a) for a in [*self.members, self.outsider])
        held = 0
        for s in self.slots | set(extra_slots):
            info = m.slot_info(s)
            held += info.escrow + info.reserved
            escrow = sum(m.commitment(a, s, CONSUME).amount for a in self.members)
            reserved = sum(m.commitment(a, s, PRODUCE).amount for a in self.members)
            assert (info.escrow, info.reserved) == (escrow, reserved)
            prod = sum(m.commitment(a, s, PRODUCE).wh for a in self.members)
            cons = sum(m.commitment(a, s, CONSUME).wh for a in self.members)
            # Settled commitments leave the totals (they count what was committed) in place.
            assert info.production_wh >= prod and info.consumption_wh >= cons
        assert self.eeuro.balanceOf(m.address) == free + held + m.seed()


@pytest.fixture(scope="module")
def base_world():
    with boa.env.anchor():
        yield World()


@pytest.fixture
def w(base_world):
    with boa.env.anchor():
        base_world.slots = set()
        yield base_world
        base_world.assert_conserved()


# -- deployment ------------------------------------------------------------------------------


def test_constructor_rejects_bad_arguments(w):
    dep = boa_env.deployer("BalancingMarket")
    zero = "0x" + "0" * 40
    e, led = w.eeuro.address, w.ledger.address
    for args in ((zero, led, w.gov, L), (e, zero, w.gov, L), (e, led, zero, L)):
        with boa.reverts("balancing: zero address"):
            dep.deploy(*args)
    for length in (59, 86_401):
        with boa.reverts("balancing: bad slot length"):
            dep.deploy(e, led, w.gov, length)
    m = dep.deploy(e, led, w.gov, 60)
    assert (m.SLOT_LENGTH(), m.GOVERNANCE(), m.version(), m.seed()) == (60, w.gov, 0, 0)


def test_no_parameters_no_commitments(w):
    m = boa_env.deployer("BalancingMarket").deploy(w.eeuro.address, w.ledger.address, w.gov, L)
    m.set_member(w.c1, 2, sender=w.gov)
    with boa.reverts("balancing: no parameters"):
        m.commit(w.now_slot() + 1, CONSUME, 1, w.unit, BIG, sender=w.c1)
    with boa.reverts("balancing: no parameters"):
        m.quote(w.now_slot() + 1, CONSUME, 1)
    with boa.reverts("balancing: no parameters"):
        m.open_slots(w.now_slot() + 1, 1)
    assert m.price(w.now_slot() + 1) == 0


# -- the price: direction, clamp, integral ---------------------------------------------------


def test_price_moves_the_right_way_and_clamps(w):
    s = w.now_slot() + 1
    assert w.m.price(s) == P.base  # balanced: the base price
    w.commit(w.p1, s, PRODUCE, 1_000)  # surplus: cheaper
    assert w.m.price(s) == P.base - 10 * P.tick == 240_000
    w.commit(w.c1, s, CONSUME, 3_000)  # deficit of 2 kWh: dearer
    assert w.m.price(s) == P.base + 20 * P.tick == 270_000
    w.commit(w.p2, s, PRODUCE, 2_000)  # balanced again: base
    assert w.m.price(s) == P.base
    # 20,000 Wh of surplus would be 250 - 200 = 50: exactly the minimum; beyond stays there.
    w.commit(w.p2, s, PRODUCE, 20_000)
    assert w.m.price(s) == P.low
    w.commit(w.p1, s, PRODUCE, 5_000)
    assert w.m.price(s) == P.low
    # The other way: 35,000 Wh of deficit is 250 + 350 = 600, the maximum.
    t = s + 1
    w.commit(w.c1, t, CONSUME, 35_000)
    assert w.m.price(t) == P.high
    assert w.m.quote(t, CONSUME, 1_000) == 600 * 1_000  # every further Wh at the max


def test_worked_example_consumer_and_producer(w):
    """A consumer of 2,000 Wh at balance moves the imbalance from 0 to -2,000: the Wh between
    -100 and 0 cost 251 base units each, ..., those between -2,000 and -1,900 cost 270, so
    100 * (251 + ... + 270) = 100 * 10 * 521 = 521,000 (0.521 EUR, 0.2605 EUR/kWh). A producer
    of 500 Wh then moves it back to -1,500: the Wh between -2,000 and -1,500 at 270 .. 266:
    100 * (270 + 269 + 268 + 267 + 266) = 134,000."""
    s = w.now_slot() + 1
    assert w.m.quote(s, CONSUME, 2_000) == 521_000
    bal = w.m.balance_of(w.c1)
    assert w.commit(w.c1, s, CONSUME, 2_000) == 521_000
    assert w.m.balance_of(w.c1) == bal - 521_000
    seed = w.m.seed()
    assert w.m.quote(s, PRODUCE, 500) == 134_000
    assert w.commit(w.p1, s, PRODUCE, 500) == 134_000
    assert w.m.seed() == seed - 134_000  # the payout is reserved out of the seed
    info = w.m.slot_info(s)
    assert (info.production_wh, info.consumption_wh, info.imbalance_wh) == (500, 2_000, -1_500)
    assert (info.escrow, info.reserved, info.version, info.starts_at) == (
        521_000,
        134_000,
        1,
        s * L,
    )
    assert info.price == 265_000
    c = w.m.commitment(w.c1, s, CONSUME)
    assert (c.unit, c.wh, c.amount) == (w.unit, 2_000, 521_000)


def test_commit_event_exact(w):
    s = w.now_slot() + 3
    w.commit(w.p1, s, PRODUCE, 250)
    # 100 Wh at 250, 100 at 249, 50 at 248.
    assert names(w.m) == [("Committed", w.p1, s, w.unit, PRODUCE, 250, 62_300, 250, 0)]
    w.commit(w.c1, s, CONSUME, 100)
    # From 250 back to 150: blocks 2 (k 200..249 at 248) and 1 (k 150..199 at 249).
    assert names(w.m) == [
        ("Committed", w.c1, s, w.unit, CONSUME, 100, 50 * 248 + 50 * 249, 250, 100)
    ]


def test_split_independence_example(w):
    """One commitment of 10 kWh costs exactly what ten of 1 kWh cost, to the base unit, on
    both sides, from a surplus and from a deficit, across the clamp."""
    s = w.now_slot() + 1
    w.commit(w.p2, s, PRODUCE, 3_333)  # start off balance, in the middle of a block
    with boa.env.anchor():
        whole = w.commit(w.c1, s, CONSUME, 10_000)
        after_whole = w.m.slot_info(s)
    with boa.env.anchor():
        pieces = sum(w.commit(w.c1, s, CONSUME, 1_000) for _ in range(10))
        assert w.m.slot_info(s) == after_whole
        assert w.m.commitment(w.c1, s, CONSUME).amount == whole
    assert whole == pieces == model.consume_cost(P, 3_333, 10_000)
    # Producers, from 3,333 of surplus into the minimum price (at 20,000).
    with boa.env.anchor():
        whole = w.commit(w.p1, s, PRODUCE, 25_000)
    with boa.env.anchor():
        pieces = sum(w.commit(w.p1, s, PRODUCE, 2_500) for _ in range(10))
    assert whole == pieces == model.produce_pay(P, 3_333, 25_000)
    # Uneven pieces by different members add up the same.
    with boa.env.anchor():
        uneven = (
            w.commit(w.c1, s, CONSUME, 1)
            + w.commit(w.c2, s, CONSUME, 4_999)
            + w.commit(w.both, s, CONSUME, 5_000)
        )
    assert uneven == model.consume_cost(P, 3_333, 10_000)


@st.composite
def curves(draw):
    low = draw(st.integers(1, 400))
    high = draw(st.integers(low + 1, 1_000))
    base = draw(st.integers(low, high))
    tick = draw(st.integers(1, 50))
    step = draw(st.integers(1, 500))
    return model.Params(base * 1000, low * 1000, high * 1000, tick * 1000, step)


@settings(max_examples=40, deadline=None, database=None)
@given(
    params=curves(),
    start=st.integers(-20_000, 20_000),
    pieces=st.lists(st.integers(1, 3_000), min_size=1, max_size=6),
    side=st.sampled_from([PRODUCE, CONSUME]),
)
def test_split_independence_property(base_world, params, start, pieces, side):
    """Any curve, any starting imbalance, any split: the pieces cost what the whole costs,
    which is the model's block-by-block sum, and the views agree with the model."""
    w = base_world
    with boa.env.anchor():
        w.m.set_parameters(*params.args(), sender=w.gov)
        s = w.now_slot() + 1
        if start > 0:
            w.commit(w.p1, s, PRODUCE, start)
        elif start < 0:
            w.m.deposit(900 * EUR, sender=w.c1)
            w.commit(w.c1, s, CONSUME, -start)
        assert w.imbalance(s) == start
        assert w.m.price(s) == model.price_wh(params, start) * 1000
        total = sum(pieces)
        want = (model.produce_pay if side == PRODUCE else model.consume_cost)(params, start, total)
        assert w.m.quote(s, side, total) == want
        who = w.p2 if side == PRODUCE else w.c2
        w.m.deposit(900 * EUR, sender=who)
        with boa.env.anchor():
            assert w.m.commit(s, side, total, w.unit, 0 if side == PRODUCE else BIG, sender=who)
            whole_state = w.m.slot_info(s)
        paid = [
            w.m.commit(s, side, x, w.unit, 0 if side == PRODUCE else BIG, sender=who)
            for x in pieces
        ]
        assert sum(paid) == want
        assert w.m.slot_info(s) == whole_state


@settings(max_examples=40, deadline=None, database=None)
@given(params=curves(), lo=st.integers(-60_000, 60_000), width=st.integers(0, 60_000))
def test_closed_form_matches_the_block_sum(base_world, params, lo, width):
    """The contract's closed form (quote) against the model, over both clamps and zero."""
    w = base_world
    with boa.env.anchor():
        w.m.set_parameters(*params.args(), sender=w.gov)
        s = w.now_slot() + 1
        if lo > 0:
            w.commit(w.p1, s, PRODUCE, lo)
        elif lo < 0:
            w.m.deposit(900 * EUR, sender=w.c1)  # 1,000 EUR: 60,000 Wh at most 1,000 each
            w.commit(w.c1, s, CONSUME, -lo)
        assert w.m.quote(s, PRODUCE, width) == model.integral(params, lo, lo + width)
        assert w.m.quote(s, CONSUME, width) == model.integral(params, lo - width, lo)


# -- time edges ------------------------------------------------------------------------------


def test_commitment_exactly_at_slot_start_is_rejected(w):
    s = w.now_slot() + 2
    w.at(s * L - 1)  # the last second before the slot: still a future slot
    w.commit(w.c1, s, CONSUME, 10)
    w.at(s * L)  # exactly at its start: the slot is current
    with boa.reverts("balancing: slot not in the future"):
        w.commit(w.c2, s, CONSUME, 10)
    with boa.reverts("balancing: slot not in the future"):
        w.commit(w.p1, s - 1, PRODUCE, 10)  # a past slot
    w.commit(w.c2, s + 1, CONSUME, 10)


def test_horizon_edge(w):
    now = w.now_slot()
    w.commit(w.c1, now + P.horizon, CONSUME, 10)
    with boa.reverts("balancing: slot beyond horizon"):
        w.commit(w.c1, now + P.horizon + 1, CONSUME, 10)


def test_cancel_until_the_slot_opens(w):
    s = w.now_slot() + 2
    w.commit(w.c1, s, CONSUME, 10)
    w.commit(w.c2, s, CONSUME, 10)
    w.at(s * L - 1)
    w.m.cancel(s, CONSUME, sender=w.c1)
    w.at(s * L)
    with boa.reverts("balancing: slot opened"):
        w.m.cancel(s, CONSUME, sender=w.c2)
    with boa.reverts("balancing: no commitment"):
        w.m.cancel(s, CONSUME, sender=w.c1)  # already cancelled
    with boa.reverts("balancing: no commitment"):
        w.m.cancel(s, PRODUCE, sender=w.c2)  # the other side


def test_certify_and_expire_windows(w):
    s = w.now_slot() + 1
    w.commit(w.p1, s, PRODUCE, 100)
    w.commit(w.p2, s, PRODUCE, 100)
    w.commit(w.c1, s, CONSUME, 100)
    end = (s + 1) * L
    w.at(end - 1)  # the slot is still running
    with boa.reverts("balancing: slot not over"):
        w.m.certify(w.p1, s, PRODUCE, 100, sender=w.unit)
    w.at(end)  # exactly at its end
    w.m.certify(w.p1, s, PRODUCE, 100, sender=w.unit)
    with boa.reverts("balancing: certification open"):
        w.m.expire(w.p2, s, PRODUCE, sender=w.outsider)
    w.at(end + P.window - 1)  # the last second of the window
    with boa.reverts("balancing: certification open"):
        w.m.expire(w.p2, s, PRODUCE, sender=w.outsider)
    w.m.certify(w.p2, s, PRODUCE, 50, sender=w.unit)
    w.at(end + P.window)  # the window closed
    with boa.reverts("balancing: certification closed"):
        w.m.certify(w.c1, s, CONSUME, 100, sender=w.unit)
    w.m.expire(w.c1, s, CONSUME, sender=w.outsider)
    with boa.reverts("balancing: no commitment"):
        w.m.expire(w.c1, s, CONSUME, sender=w.outsider)


# -- cancel at the price it moves back -------------------------------------------------------


def test_consumer_cancel_after_the_price_rose_is_paid_the_unwind(w):
    """c1 buys 1,000 Wh at balance (251..260: 255,500); c2 then buys 1,000 more (261..270:
    265,500). c1 cancelling puts its 1,000 Wh back at imbalance -2,000: the Wh from -2,000 to
    -1,000 are worth 265,500, which c1 is credited; the seed pays the 10,000 difference."""
    s = w.now_slot() + 1
    assert w.commit(w.c1, s, CONSUME, 1_000) == 255_500
    assert w.commit(w.c2, s, CONSUME, 1_000) == 265_500
    bal, seed = w.m.balance_of(w.c1), w.m.seed()
    assert w.m.cancel(s, CONSUME, sender=w.c1) == 265_500
    assert names(w.m) == [("Cancelled", w.c1, s, CONSUME, 1_000, 255_500, 265_500)]
    assert w.m.balance_of(w.c1) == bal + 265_500
    assert w.m.seed() == seed - 10_000
    info = w.m.slot_info(s)
    assert (info.consumption_wh, info.escrow, info.imbalance_wh) == (1_000, 265_500, -1_000)
    assert w.m.commitment(w.c1, s, CONSUME).wh == 0
    # c2 cancels too: back to balance at 255,500, the seed keeps the 10,000 and is whole.
    assert w.m.cancel(s, CONSUME, sender=w.c2) == 255_500
    assert w.m.seed() == seed
    assert w.m.slot_info(s).escrow == 0


def test_producer_cancel_pays_or_is_paid_the_difference(w):
    """p1 produces 1,000 Wh at balance: paid 250..241 -> 245,500 reserved. A consumer then
    buys 2,000 Wh (imbalance 1,000 -> -1,000). p1 cancelling takes its 1,000 Wh out at
    -1,000: the Wh from -2,000 to -1,000 are worth 265,500, 20,000 more than its reserve: p1
    pays that from its free balance, the seed is paid 265,500 and releases the reserve."""
    s = w.now_slot() + 1
    assert w.commit(w.p1, s, PRODUCE, 1_000) == 245_500
    w.commit(w.c1, s, CONSUME, 2_000)
    bal, seed = w.m.balance_of(w.p1), w.m.seed()
    with boa.env.anchor():
        w.m.withdraw(bal - 19_999, sender=w.p1)
        with boa.reverts("balancing: balance too low"):
            w.m.cancel(s, PRODUCE, sender=w.p1)
    assert w.m.cancel(s, PRODUCE, sender=w.p1) == 265_500
    assert w.m.balance_of(w.p1) == bal - 20_000
    assert w.m.seed() == seed + 265_500
    assert w.m.slot_info(s).reserved == 0
    # The other way: a producer whose price fell is credited the rest of its reserve.
    t = s + 1
    assert w.commit(w.p1, t, PRODUCE, 1_000) == 245_500
    w.commit(w.p2, t, PRODUCE, 1_000)
    bal = w.m.balance_of(w.p1)
    # Out at imbalance 2,000: the Wh from 1,000 to 2,000 are worth 240..231 -> 235,500.
    assert w.m.cancel(t, PRODUCE, sender=w.p1) == 235_500
    assert w.m.balance_of(w.p1) == bal + 10_000


def test_commit_then_cancel_restores_everything(w):
    s = w.now_slot() + 1
    w.commit(w.p2, s, PRODUCE, 777)
    before = (w.m.slot_info(s), w.m.seed(), w.m.balance_of(w.both))
    w.commit(w.both, s, CONSUME, 4_321)
    w.m.cancel(s, CONSUME, sender=w.both)
    w.commit(w.both, s, PRODUCE, 1_234)
    w.m.cancel(s, PRODUCE, sender=w.both)
    assert (w.m.slot_info(s), w.m.seed(), w.m.balance_of(w.both)) == before


def test_consumer_cancel_needing_more_seed_than_left_reverts(w):
    s = w.now_slot() + 1
    w.commit(w.c1, s, CONSUME, 1_000)
    w.commit(w.c2, s, CONSUME, 1_000)
    w.m.withdraw_seed(w.gov, w.m.seed() - 9_999, sender=w.gov)  # the unwind needs 10,000
    with boa.reverts("balancing: seed too low"):
        w.m.cancel(s, CONSUME, sender=w.c1)
    w.m.fund(1, sender=w.gov)
    w.m.cancel(s, CONSUME, sender=w.c1)
    assert w.m.seed() == 0


# -- escrow until certified delivery ---------------------------------------------------------


def test_certify_producer_pro_rata_rounds_down_over_delivery_capped(w):
    s = w.now_slot() + 1
    pay = w.commit(w.p1, s, PRODUCE, 3)  # 3 Wh at 250: 750
    assert pay == 750
    big = w.commit(w.p2, s, PRODUCE, 1_000)
    w.at((s + 1) * L)
    bal, seed = w.m.balance_of(w.p1), w.m.seed()
    w.m.certify(w.p1, s, PRODUCE, 1, sender=w.unit)  # 750 * 1 / 3 = 250
    assert names(w.m) == [("DeliveryCertified", w.p1, s, w.unit, PRODUCE, 3, 1, 250, 500)]
    assert (w.m.balance_of(w.p1), w.m.seed()) == (bal + 250, seed + 500)
    # Over-delivery is paid as the commitment, no more.
    bal = w.m.balance_of(w.p2)
    w.m.certify(w.p2, s, PRODUCE, 5_000, sender=w.unit)
    assert names(w.m) == [("DeliveryCertified", w.p2, s, w.unit, PRODUCE, 1_000, 5_000, big, 0)]
    assert w.m.balance_of(w.p2) == bal + big
    assert w.m.slot_info(s).reserved == 0


def test_certify_producer_rounding_down_leaves_the_remainder_to_the_seed(w):
    s = w.now_slot() + 1
    # 7 Wh at 250 = 1,750; delivered 3 of 7: 1,750 * 3 / 7 = 750 exact; try 2 of 7: 500.
    # Make the amount not divisible: 7 Wh starting at imbalance 97 (250 x 3 + 249 x 4).
    w.commit(w.p2, s, PRODUCE, 97)
    assert w.commit(w.p1, s, PRODUCE, 7) == 1_746
    w.at((s + 1) * L)
    seed = w.m.seed()
    w.m.certify(w.p1, s, PRODUCE, 2, sender=w.unit)  # 1,746 * 2 / 7 = 498.857 -> 498
    assert names(w.m)[0][-2:] == (498, 1_248)
    assert w.m.seed() == seed + 1_248


def test_certify_consumer_refund_is_exact_remainder(w):
    s = w.now_slot() + 1
    cost = w.commit(w.c1, s, CONSUME, 7)  # 7 Wh at 251: 1,757
    assert cost == 1_757
    w.commit(w.c2, s, CONSUME, 100)
    w.at((s + 1) * L)
    bal, seed = w.m.balance_of(w.c1), w.m.seed()
    # Delivered 3 of 7: the market keeps 1,757 * 3 / 7 = 753; the refund is the rest, 1,004.
    w.m.certify(w.c1, s, CONSUME, 3, sender=w.unit)
    assert names(w.m) == [("DeliveryCertified", w.c1, s, w.unit, CONSUME, 7, 3, 1_004, 753)]
    assert (w.m.balance_of(w.c1), w.m.seed()) == (bal + 1_004, seed + 753)
    # c2's 100 Wh from -7 to -107: 93 at 251 and 7 at 252 = 25,107; delivered 33:
    # 25,107 * 33 / 100 = 8,285.31, the market keeps 8,286 (up), the refund is 16,821.
    assert w.m.commitment(w.c2, s, CONSUME).amount == 25_107
    w.m.certify(w.c2, s, CONSUME, 33, sender=w.unit)
    assert names(w.m)[0][-2:] == (16_821, 8_286)
    assert w.m.slot_info(s).escrow == 0


def test_certify_consumer_share_rounds_up(w):
    s = w.now_slot() + 1
    w.commit(w.c2, s, CONSUME, 99)
    # 3 Wh from -99 to -102: one at 251, two at 252 = 755; delivered 1 of 3: 251.67 -> 252.
    assert w.commit(w.c1, s, CONSUME, 3) == 755
    w.at((s + 1) * L)
    w.m.certify(w.c1, s, CONSUME, 1, sender=w.unit)
    assert names(w.m)[0][-2:] == (503, 252)


def test_full_and_zero_delivery(w):
    s = w.now_slot() + 1
    pay = w.commit(w.p1, s, PRODUCE, 500)
    cost = w.commit(w.c1, s, CONSUME, 500)
    w.at((s + 1) * L)
    seed, bp, bc = w.m.seed(), w.m.balance_of(w.p1), w.m.balance_of(w.c1)
    w.m.certify(w.p1, s, PRODUCE, 0, sender=w.unit)  # nothing produced: nothing paid
    w.m.certify(w.c1, s, CONSUME, 500, sender=w.unit)  # all consumed: nothing refunded
    assert (w.m.balance_of(w.p1), w.m.balance_of(w.c1)) == (bp, bc)
    assert w.m.seed() == seed + pay + cost


def test_expire_refunds_the_consumer_and_returns_the_reserve(w):
    s = w.now_slot() + 1
    pay = w.commit(w.p1, s, PRODUCE, 500)
    cost = w.commit(w.c1, s, CONSUME, 800)
    w.at((s + 1) * L + P.window)
    seed, bc = w.m.seed(), w.m.balance_of(w.c1)
    w.m.expire(w.c1, s, CONSUME, sender=w.outsider)
    assert names(w.m) == [("CommitmentExpired", w.c1, s, w.outsider, CONSUME, 800, cost, 0)]
    w.m.expire(w.p1, s, PRODUCE, sender=w.outsider)
    assert names(w.m) == [("CommitmentExpired", w.p1, s, w.outsider, PRODUCE, 500, 0, pay)]
    assert w.m.balance_of(w.c1) == bc + cost
    assert w.m.seed() == seed + pay


def test_only_the_named_active_unit_certifies(w):
    s = w.now_slot() + 1
    w.commit(w.c1, s, CONSUME, 10, unit=w.unit2)
    w.commit(w.c2, s, CONSUME, 10, unit=w.fake_unit)
    w.at((s + 1) * L)
    for who in (w.unit, w.c1, w.gov, w.outsider, w.fake_unit):
        with boa.reverts("balancing: not the commitment's unit"):
            w.m.certify(w.c1, s, CONSUME, 10, sender=who)
    # An address the ledger does not know cannot certify what names it.
    with boa.reverts("balancing: unit not active"):
        w.m.certify(w.c2, s, CONSUME, 10, sender=w.fake_unit)
    # Nor a unit the Council removed from the ledger.
    w.ledger.remove_storage_unit(w.unit2, sender=w.gov)
    with boa.reverts("balancing: unit not active"):
        w.m.certify(w.c1, s, CONSUME, 10, sender=w.unit2)
    with boa.reverts("balancing: no commitment"):
        w.m.certify(w.p1, s, PRODUCE, 10, sender=w.unit)
    with boa.reverts("balancing: bad side"):
        w.m.certify(w.c1, s, 2, 10, sender=w.unit2)


# -- the seed covers every payout ------------------------------------------------------------


def test_a_payout_the_seed_cannot_cover_is_rejected(w):
    s = w.now_slot() + 1
    w.m.withdraw_seed(w.gov, w.m.seed() - 25_000, sender=w.gov)
    with boa.reverts("balancing: seed too low"):
        w.commit(w.p1, s, PRODUCE, 101)  # 100 x 250 + 249 = 25,249
    assert w.commit(w.p1, s, PRODUCE, 100) == 25_000  # exactly the seed
    assert w.m.seed() == 0
    with boa.reverts("balancing: seed too low"):
        w.m.withdraw_seed(w.gov, 1, sender=w.gov)  # the reserve is not free seed
    # Consumers' payments do not fund payouts until delivery settles them.
    w.commit(w.c1, s, CONSUME, 1_000)
    with boa.reverts("balancing: seed too low"):
        w.commit(w.p2, s, PRODUCE, 1)


# -- commitments: input, roles, limits, adding -----------------------------------------------


def test_commit_bad_input(w):
    s = w.now_slot() + 1
    zero = "0x" + "0" * 40
    with boa.reverts("balancing: bad side"):
        w.m.commit(s, 2, 10, w.unit, BIG, sender=w.both)
    with boa.reverts("balancing: zero energy"):
        w.m.commit(s, CONSUME, 0, w.unit, BIG, sender=w.c1)
    with boa.reverts("balancing: commitment too large"):
        w.m.commit(s, CONSUME, 2**40, w.unit, BIG, sender=w.c1)
    with boa.reverts("balancing: zero unit"):
        w.m.commit(s, CONSUME, 10, zero, BIG, sender=w.c1)
    with boa.reverts("balancing: balance too low"):
        w.commit(w.c1, s, CONSUME, 400_000)  # ~240 EUR of a 100 EUR balance
    with boa.reverts("balancing: bad side"):
        w.m.quote(s, 2, 1)
    with boa.reverts("balancing: bad side"):
        w.m.cancel(s, 2, sender=w.c1)


def test_only_whitelisted_sides_commit(w):
    s = w.now_slot() + 1
    for who, side in (
        (w.c1, PRODUCE),
        (w.p1, CONSUME),
        (w.outsider, PRODUCE),
        (w.outsider, CONSUME),
        (w.gov, CONSUME),
        (w.unit, PRODUCE),
    ):
        with boa.reverts("balancing: not whitelisted"):
            w.m.commit(s, side, 1, w.unit, 0 if side == PRODUCE else BIG, sender=who)
    w.commit(w.both, s, PRODUCE, 10)
    w.commit(w.both, s, CONSUME, 10)
    # Removing the roles stops new commitments; existing ones still settle.
    w.m.set_member(w.both, 0, sender=w.gov)
    with boa.reverts("balancing: not whitelisted"):
        w.commit(w.both, s, CONSUME, 1)
    w.m.cancel(s, CONSUME, sender=w.both)
    w.at((s + 1) * L)
    w.m.certify(w.both, s, PRODUCE, 10, sender=w.unit)


def test_slippage_limits(w):
    s = w.now_slot() + 1
    cost = w.m.quote(s, CONSUME, 1_000)
    with boa.reverts("balancing: cost above limit"):
        w.commit(w.c1, s, CONSUME, 1_000, limit=cost - 1)
    assert w.commit(w.c1, s, CONSUME, 1_000, limit=cost) == cost
    pay = w.m.quote(s, PRODUCE, 1_000)
    with boa.reverts("balancing: payout below limit"):
        w.commit(w.p1, s, PRODUCE, 1_000, limit=pay + 1)
    assert w.commit(w.p1, s, PRODUCE, 1_000, limit=pay) == pay


def test_a_second_commit_adds_to_the_first(w):
    s = w.now_slot() + 1
    a = w.commit(w.c1, s, CONSUME, 300)
    b = w.commit(w.c1, s, CONSUME, 200)
    c = w.m.commitment(w.c1, s, CONSUME)
    assert (c.wh, c.amount) == (500, a + b) == (500, model.consume_cost(P, 0, 500))
    with boa.reverts("balancing: other unit"):
        w.commit(w.c1, s, CONSUME, 1, unit=w.unit2)
    # Cancel takes the whole commitment back.
    assert w.m.cancel(s, CONSUME, sender=w.c1) == a + b


# -- money in and out ------------------------------------------------------------------------


def test_deposit_withdraw_fund_events_and_reverts(w):
    w.m.deposit(5, sender=w.outsider)
    assert names(w.m) == [("Deposited", w.outsider, 5, 5)]
    w.m.withdraw(2, sender=w.outsider)
    assert names(w.m) == [("Withdrawn", w.outsider, 2, 3)]
    with boa.reverts("balancing: balance too low"):
        w.m.withdraw(4, sender=w.outsider)
    for call in (w.m.deposit, w.m.withdraw, w.m.fund):
        with boa.reverts("balancing: zero amount"):
            call(0, sender=w.outsider)
    seed = w.m.seed()
    w.m.fund(7, sender=w.outsider)  # anyone may fund the seed
    assert names(w.m) == [("SeedFunded", w.outsider, 7, seed + 7)]
    assert w.eeuro.balanceOf(w.outsider) == 1_000 * EUR - 5 + 2 - 7
    # Roles survive balance changes and vice versa.
    assert w.m.roles_of(w.both) == 3
    w.m.deposit(1, sender=w.both)
    assert w.m.roles_of(w.both) == 3
    bal = w.m.balance_of(w.both)
    w.m.set_member(w.both, 1, sender=w.gov)
    assert (w.m.roles_of(w.both), w.m.balance_of(w.both)) == (1, bal)


def test_withdraw_seed(w):
    seed = w.m.seed()
    w.m.withdraw_seed(w.outsider, 10, sender=w.gov)
    assert names(w.m) == [("SeedWithdrawn", w.outsider, 10, seed - 10)]
    assert w.eeuro.balanceOf(w.outsider) == 1_000 * EUR + 10
    with boa.reverts("balancing: zero amount"):
        w.m.withdraw_seed(w.outsider, 0, sender=w.gov)
    with boa.reverts("balancing: bad receiver"):
        w.m.withdraw_seed(w.m.address, 1, sender=w.gov)
    with boa.reverts("balancing: bad receiver"):
        w.m.withdraw_seed("0x" + "0" * 40, 1, sender=w.gov)
    with boa.reverts("balancing: seed too low"):
        w.m.withdraw_seed(w.gov, seed - 9, sender=w.gov)


# -- governance ------------------------------------------------------------------------------


def test_every_privileged_function_from_every_other_role(w):
    s = w.now_slot() + 1
    w.commit(w.p1, s, PRODUCE, 10)
    roles = [w.p1, w.c1, w.both, w.outsider, w.unit, w.unit_owner, w.banker, w.m.address]
    for who in roles:
        with boa.reverts(GOV_ONLY):
            w.m.set_member(who, 3, sender=who)
        with boa.reverts(GOV_ONLY):
            w.m.set_parameters(*P.args(), sender=who)
        with boa.reverts(GOV_ONLY):
            w.m.withdraw_seed(who, 1, sender=who)
    # Members cannot touch each other's commitments: cancel is the caller's own.
    with boa.reverts("balancing: no commitment"):
        w.m.cancel(s, PRODUCE, sender=w.c1)


def test_set_member_input_and_event(w):
    w.m.set_member(w.outsider, 2, sender=w.gov)
    assert names(w.m) == [("MemberSet", w.outsider, 2)]
    with boa.reverts("balancing: bad roles"):
        w.m.set_member(w.outsider, 4, sender=w.gov)
    with boa.reverts("balancing: zero address"):
        w.m.set_member("0x" + "0" * 40, 1, sender=w.gov)


def test_set_parameters_checks_and_event(w):
    g = w.gov
    good = list(P.args())

    def with_(i, v):
        a = list(good)
        a[i] = v
        return a

    for i in range(4):
        with boa.reverts("balancing: price not on grid"):
            w.m.set_parameters(*with_(i, good[i] + 1), sender=g)
        with boa.reverts("balancing: price too large"):
            w.m.set_parameters(*with_(i, 2**40 * 1000), sender=g)
    for args in (with_(1, 0), with_(1, 600_000), with_(0, 40_000), with_(0, 601_000)):
        with boa.reverts("balancing: bad price range"):
            w.m.set_parameters(*args, sender=g)
    with boa.reverts("balancing: zero price step"):
        w.m.set_parameters(*with_(3, 0), sender=g)
    for v in (0, 2**40):
        with boa.reverts("balancing: bad step"):
            w.m.set_parameters(*with_(4, v), sender=g)
    for v in (0, 2**24):
        with boa.reverts("balancing: bad horizon"):
            w.m.set_parameters(*with_(5, v), sender=g)
    for v in (59, 30 * 86_400 + 1):
        with boa.reverts("balancing: bad certification window"):
            w.m.set_parameters(*with_(6, v), sender=g)
    edge = (1_000, 1_000, 2_000, 1_000, 1, 1, 60)
    w.m.set_parameters(*edge, sender=g)
    assert names(w.m) == [("ParametersSet", 2, *edge)]
    p = w.m.parameters(0)
    assert (
        p.base_price,
        p.min_price,
        p.max_price,
        p.price_step,
        p.step_wh,
        p.horizon_slots,
        p.certify_window,
    ) == edge
    assert w.m.parameters(1).base_price == P.base
    assert w.m.parameters(9).base_price == 0


def test_a_slot_keeps_the_parameters_of_its_first_commitment(w):
    s = w.now_slot() + 1
    w.commit(w.c1, s, CONSUME, 1_000)
    w.m.open_slots(s + 1, 2)
    w.m.set_parameters(500_000, 100_000, 900_000, 2_000, 10, 5, 3_600, sender=w.gov)
    # The slot with a commitment keeps version 1 for commits, quotes and cancels.
    assert w.m.slot_info(s).version == 1
    assert w.m.quote(s, CONSUME, 100) == model.consume_cost(P, -1_000, 100)
    assert w.commit(w.c2, s, CONSUME, 100) == model.consume_cost(P, -1_000, 100)
    assert w.m.cancel(s, CONSUME, sender=w.c1) == model.integral(P, -1_100, -100)
    # An opened slot without commitments takes the version in force at its first one.
    new = model.Params(500_000, 100_000, 900_000, 2_000, 10, 5, 3_600)
    assert w.m.slot_info(s + 1).version == 2
    assert w.commit(w.c1, s + 1, CONSUME, 100) == model.consume_cost(new, 0, 100)
    assert w.m.slot_info(s + 1).version == 2
    # The new horizon (5 slots) applies to new slots; version 1's window to slot s.
    with boa.reverts("balancing: slot beyond horizon"):
        w.commit(w.c1, w.now_slot() + 6, CONSUME, 1)
    w.at((s + 2) * L + 3_600)  # slot s + 1 is past version 2's window, s within version 1's
    w.m.certify(w.c2, s, CONSUME, 100, sender=w.unit)
    with boa.reverts("balancing: certification closed"):
        w.m.certify(w.c1, s + 1, CONSUME, 100, sender=w.unit)
    w.slots.add(s + 2)


# -- opening slots ahead ---------------------------------------------------------------------


def test_open_slots(w):
    now = w.now_slot()
    assert w.m.open_slots(now + 1, 3, sender=w.outsider) == 3
    assert names(w.m) == [("SlotsOpened", w.outsider, now + 1, 3, 3)]
    w.slots.update({now + 1, now + 2, now + 3, now + 4})
    info = w.m.slot_info(now + 2)
    assert (info.version, info.production_wh, info.price) == (1, 0, P.base)
    w.commit(w.c1, now + 4, CONSUME, 10)
    assert w.m.open_slots(now + 3, 3, sender=w.outsider) == 1  # 3 open, 4 committed, 5 new
    w.slots.add(now + 5)
    assert w.m.slot_info(now + 4).consumption_wh == 10
    assert w.commit(w.c1, now + 2, CONSUME, 10) == model.consume_cost(P, 0, 10)
    with boa.reverts("balancing: bad slot count"):
        w.m.open_slots(now + 1, 0)
    with boa.reverts("balancing: bad slot count"):
        w.m.open_slots(now + 1, 97)
    with boa.reverts("balancing: slot not in the future"):
        w.m.open_slots(now, 1)
    w.m.open_slots(now + P.horizon - 95, 96)  # the last one exactly at the horizon
    with boa.reverts("balancing: slot beyond horizon"):
        w.m.open_slots(now + P.horizon - 94, 96)


def test_extreme_parameters_fill_a_slot_without_overflow(w):
    """The largest price and tick the market accepts, and a slot filled exactly to its bound
    (2**48 - 1 Wh a side) by producers of the largest commitment: the unchecked curve math
    stays exact (every amount and quote = the model's sum) and the bound reverts cleanly.
    Price: 2**40 - 1 base units per Wh for the first 1,024 Wh of surplus (and all of the
    deficit side), 1 base unit per Wh after that."""
    top, step, max_wh = 2**40 - 1, 1_024, 2**40 - 1
    huge = model.Params(top * 1000, 1000, top * 1000, top * 1000, step, 1, 86_400)
    w.m.set_parameters(*huge.args(), sender=w.gov)
    s = w.now_slot() + 1
    w.slots.add(s)
    assert w.m.quote(s, CONSUME, max_wh) == max_wh * top == model.consume_cost(huge, 0, max_wh)
    w.eeuro.mint(w.gov, 2**51, sender=w.banker)
    w.m.fund(2**51, sender=w.gov)
    producers = boa_env.accounts(257, "bal-big")
    w.members = [*w.members, *producers]
    for who in producers:
        w.m.set_member(who, 1, sender=w.gov)
    assert w.m.commit(s, PRODUCE, step, w.unit, 0, sender=producers[0]) == step * top
    imb = step
    for who in producers[1:256]:
        assert w.m.commit(s, PRODUCE, max_wh, w.unit, 0, sender=who) == max_wh  # 1 per Wh
        imb += max_wh
    assert w.imbalance(s) == imb == 255 * 2**40 + 769
    room = 2**48 - 1 - imb
    with boa.reverts("balancing: slot full"):
        w.m.commit(s, PRODUCE, room + 1, w.unit, 0, sender=producers[256])
    assert w.m.commit(s, PRODUCE, room, w.unit, 0, sender=producers[256]) == room
    imb += room
    assert w.m.slot_info(s).production_wh == 2**48 - 1
    for wh in (1, step, max_wh):
        assert w.m.quote(s, PRODUCE, wh) == model.produce_pay(huge, imb, wh)
        assert w.m.quote(s, CONSUME, wh) == model.consume_cost(huge, imb, wh)
    with boa.reverts("balancing: slot full"):
        w.m.commit(s, PRODUCE, 1, w.unit, 0, sender=w.p1)
