"""Every event of the balancing market (SPEC §9, issue 14) on Anvil through Ape: the exact
`tx.events` of each call, the token's transfers included. The arithmetic is checked in depth
on titanoboa (test_balancing.py, tests/fuzz); here the amounts come from the block-by-block
model (tests/balancing_model.py), so a wrong event field or a missing or extra event fails.
The governance account stands in for the Council (its votes are tested in tests/e2e)."""

from __future__ import annotations

import pytest

from tests import balancing_model as model

L = 900
EUR = 10**6
PRODUCE, CONSUME = 0, 1
P = model.Params()


@pytest.fixture(scope="module")
def gov(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def people(accounts):
    names = ("banker", "unit", "unit_owner", "p1", "c1", "c2", "outsider")
    return dict(zip(names, (accounts[i] for i in (1, 8, 10, 11, 12, 14, 15)), strict=True))


@pytest.fixture(scope="module")
def world(project, gov, people):
    ledger = gov.deploy(project.EnergyLedger, gov)
    eeuro = gov.deploy(project.EEuro, gov)
    market = gov.deploy(project.BalancingMarket, eeuro, ledger, gov, L)
    ledger.register_storage_unit(people["unit"], people["unit_owner"], sender=gov)
    eeuro.set_banker(people["banker"], sender=gov)
    for who in (gov, people["p1"], people["c1"], people["c2"], people["outsider"]):
        eeuro.mint(who, 1_000 * EUR, sender=people["banker"])
        eeuro.approve(market, 2**256 - 1, sender=who)
    return ledger, eeuro, market


def test_governance_events(world, gov, people):
    _, eeuro, market = world
    tx = market.set_parameters(*P.args(), sender=gov)
    assert tx.events == [
        market.ParametersSet(
            version=1,
            base_price=P.base,
            min_price=P.low,
            max_price=P.high,
            price_step=P.tick,
            step_wh=P.step,
            horizon_slots=P.horizon,
            certify_window=P.window,
        )
    ]
    tx = market.set_member(people["p1"], 1, sender=gov)
    assert tx.events == [market.MemberSet(account=people["p1"], roles=1)]
    tx = market.fund(100 * EUR, sender=gov)
    assert tx.events == [
        market.SeedFunded(funder=gov, amount=100 * EUR, seed=100 * EUR),
        eeuro.Transfer(sender=gov, receiver=market, value=100 * EUR),
    ]
    tx = market.withdraw_seed(people["outsider"], 30 * EUR, sender=gov)
    assert tx.events == [
        market.SeedWithdrawn(receiver=people["outsider"], amount=30 * EUR, seed=70 * EUR),
        eeuro.Transfer(sender=market, receiver=people["outsider"], value=30 * EUR),
    ]
    assert eeuro.balanceOf(market) == market.seed() == 70 * EUR


def test_member_slot_and_settlement_events(world, chain, gov, people):
    _, eeuro, market = world
    p1, c1, c2, unit, outsider = (people[k] for k in ("p1", "c1", "c2", "unit", "outsider"))
    market.set_parameters(*P.args(), sender=gov)
    market.fund(100 * EUR, sender=gov)
    market.set_member(p1, 1, sender=gov)
    for c in (c1, c2):
        market.set_member(c, 2, sender=gov)

    tx = market.deposit(5 * EUR, sender=c1)
    assert tx.events == [
        market.Deposited(account=c1, amount=5 * EUR, balance=5 * EUR),
        eeuro.Transfer(sender=c1, receiver=market, value=5 * EUR),
    ]
    tx = market.withdraw(2 * EUR, sender=c1)
    assert tx.events == [
        market.Withdrawn(account=c1, amount=2 * EUR, balance=3 * EUR),
        eeuro.Transfer(sender=market, receiver=c1, value=2 * EUR),
    ]
    market.deposit(1 * EUR, sender=c2)

    s = chain.pending_timestamp // L + 2  # a slot at least 15 minutes ahead
    tx = market.open_slots(s, 2, sender=outsider)
    assert tx.events == [market.SlotsOpened(caller=outsider, first=s, count=2, opened=2)]
    tx = market.open_slots(s + 1, 2, sender=outsider)  # s + 1 is open already
    assert tx.events == [market.SlotsOpened(caller=outsider, first=s + 1, count=2, opened=1)]

    pay = model.produce_pay(P, 0, 250)
    assert pay == 100 * 250 + 100 * 249 + 50 * 248  # 62,300
    tx = market.commit(s, PRODUCE, 250, unit, 0, sender=p1)
    assert tx.events == [
        market.Committed(
            account=p1, slot=s, unit=unit, side=PRODUCE, wh=250, amount=pay,
            production_wh=250, consumption_wh=0,
        )
    ]  # fmt: skip
    cost1 = model.consume_cost(P, 250, 100)
    tx = market.commit(s, CONSUME, 100, unit, 2**256 - 1, sender=c1)
    assert tx.events == [
        market.Committed(
            account=c1, slot=s, unit=unit, side=CONSUME, wh=100, amount=cost1,
            production_wh=250, consumption_wh=100,
        )
    ]  # fmt: skip
    cost2 = model.consume_cost(P, 150, 50)
    market.commit(s, CONSUME, 50, unit, 2**256 - 1, sender=c2)
    # Cancelled before the slot opens: at the price it moves back, here what it paid.
    unwind = model.integral(P, 100, 150)
    tx = market.cancel(s, CONSUME, sender=c2)
    assert tx.events == [
        market.Cancelled(account=c2, slot=s, side=CONSUME, wh=50, held=cost2, unwind=unwind)
    ]
    assert market.balance_of(c2) == 1 * EUR - cost2 + unwind

    end = (s + 1) * L
    chain.pending_timestamp = end  # exactly at the slot's end
    tx = market.certify(p1, s, PRODUCE, 200, sender=unit)
    credited = pay * 200 // 250
    assert tx.events == [
        market.DeliveryCertified(
            account=p1, slot=s, unit=unit, side=PRODUCE, committed_wh=250, delivered_wh=200,
            credited=credited, to_seed=pay - credited,
        )
    ]  # fmt: skip
    chain.pending_timestamp = end + P.window  # the window closed: anyone expires c1's
    tx = market.expire(c1, s, CONSUME, sender=outsider)
    assert tx.events == [
        market.CommitmentExpired(
            account=c1, slot=s, caller=outsider, side=CONSUME, committed_wh=100,
            credited=cost1, to_seed=0,
        )
    ]  # fmt: skip
    # Conserved: the market's eEuro is the members' free balances plus the seed.
    free = sum(market.balance_of(a) for a in (p1, c1, c2))
    assert eeuro.balanceOf(market) == free + market.seed()
    assert market.balance_of(p1) == credited and market.balance_of(c1) == 3 * EUR
