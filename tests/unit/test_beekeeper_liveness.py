"""Hive-owner governance liveness (issue 11), on titanoboa (tests/fuzz/boa_env.py).

On main only one upgrade ballot could be open: a minority owner could open a ballot just
before the majority's and open it again at every expiry, and the majority could never pass
anything. Now any number of ballots may be open, every ballot reads power at its own start,
and each owner votes once per ballot in increasing ballot order (a new ballot is always the
newest, so everyone can vote on it). Power on a ballot is never more than the owner's power
at its start, even after the owner restakes across several ballots (the weighted start is
merged with the age capped). A ballot whose implementation vanished closes failed: tested in
tests/unit/test_beekeeper_governance.py (titanoboa keeps code destroyed under EIP-6780).
"""

import boa
import pytest

from tests.beekeeper_helpers import (
    BALLOT_OPEN,
    BALLOT_PASSED,
    BALLOT_REJECTED,
    FULL_WEIGHT_AGE,
    HIVE_COST,
    HVT,
    METER_COST,
    VOTING_PERIOD,
)
from tests.fuzz import boa_env


class World:
    """Three owners with one hive each: 550 HVT staked apiece (two of them are a majority),
    a spare meter per owner, version 2 as a valid upgrade and a coin as a junk one."""

    def __init__(self):
        self.gov = boa.env.generate_address("governance")
        self.treasury = boa.env.generate_address("treasury")
        self.attacker = boa.env.generate_address("attacker")
        self.owners = boa_env.accounts(3, "owner")
        self.meters = boa_env.accounts(6, "meter")
        self.hvt, self.v1, self.v2, self.bk = boa_env.deploy_beekeeper(
            self.gov, self.treasury, HIVE_COST, METER_COST
        )
        with boa.env.prank(self.gov):
            self.coin = boa_env.deployer("MockToken").deploy("EUR", 6)
        with boa.env.prank(self.gov):
            self.bk.add_stablecoin(self.coin.address, "EUR")
            for i, m in enumerate(self.meters):
                self.bk.add_meter(m, self.owners[i % 3], f"SN{i}", "Acme")
        for o in self.owners:
            self.hvt.transfer(o, 10_000 * HVT, sender=self.treasury)
            self.hvt.approve(self.bk.address, 2**256 - 1, sender=o)
        for i, o in enumerate(self.owners):
            self.bk.create_hive(self.coin.address, [self.meters[i]], sender=o)
        boa.env.time_travel(seconds=FULL_WEIGHT_AGE)


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture
def w(world):
    with boa.env.anchor():
        yield world


def power(stake, start, at):
    return (
        0
        if stake == 0 or at <= start
        else stake * min(at - start, FULL_WEIGHT_AGE) // FULL_WEIGHT_AGE
    )


def now():
    return boa.env.evm.patch.timestamp


def test_minority_front_run_and_reopen_cannot_freeze_the_majority(w):
    """The freeze attack of issue 11. On main the majority's `propose_upgrade` reverted
    "beekeeper: ballot open" for as long as the minority kept a ballot open."""
    bk, (a, b, minority) = w.bk, w.owners
    junk = w.coin.address  # a contract, not a Beekeeper: passing it would brick the proxy
    for _ in range(3):
        # The minority front-runs the majority with a useless ballot...
        j = bk.propose_upgrade(junk, sender=minority)
        # ...and the majority passes the version it wants in its next two transactions.
        target = w.v2 if bk.implementation() == w.v1.address else w.v1
        ballot = bk.propose_upgrade(target.address, sender=a)
        assert ballot == j + 1
        assert bk.vote(ballot, True, sender=b) is True
        assert bk.implementation() == target.address
        assert bk.ballot_info(ballot).status == BALLOT_PASSED
        # The junk ballot stays open, powerless, until it expires; the minority reopens one
        # at once (on main: the only ballot, reopened at every expiry).
        assert bk.ballot_info(j).status == BALLOT_OPEN
        boa.env.time_travel(seconds=VOTING_PERIOD)
        with boa.reverts("beekeeper: ballot expired"):
            bk.vote(j, True, sender=minority)


def test_many_open_ballots_and_a_majority_that_voted_on_junk(w):
    """Ballots opened by the minority take nothing from anyone: the majority may even have
    voted NO on newer junk ballots; it opens a fresh ballot, which is always the newest."""
    bk, (a, b, minority) = w.bk, w.owners
    junk = w.coin.address
    first = bk.propose_upgrade(w.v2.address, sender=a)  # the majority's ballot
    js = [bk.propose_upgrade(junk, sender=minority) for _ in range(2)]
    assert js == [first + 1, first + 2]
    # Minority spam costs it its own votes only: it already voted YES on each.
    with boa.reverts("beekeeper: already voted"):
        bk.vote(js[1], True, sender=minority)
    with boa.reverts("beekeeper: voted on a newer ballot"):
        bk.vote(js[0], False, sender=minority)
    # b says NO to the newest junk ballot first; it can no longer vote on older ones.
    assert bk.vote(js[1], False, sender=b) is False
    assert bk.last_vote(b) == js[1]
    assert bk.ballot_info(js[1]).status == BALLOT_OPEN  # 550 NO of 1,650: not yet rejected
    with boa.reverts("beekeeper: voted on a newer ballot"):
        bk.vote(first, True, sender=b)
    # A NO majority rejects the junk at once.
    assert bk.vote(js[1], False, sender=a) is False
    assert bk.ballot_info(js[1]).status == BALLOT_REJECTED
    # The majority opens the same upgrade again and passes it in its next transactions.
    again = bk.propose_upgrade(w.v2.address, sender=b)
    assert again == js[1] + 1
    assert bk.vote(again, True, sender=a) is True
    assert bk.implementation() == w.v2.address
    assert bk.ballot_count() == again


def test_every_ballot_reads_power_at_its_own_start(w):
    """Power on each open ballot is the owner's power at that ballot's start: a change
    after it only lowers the changer's own power, never raises it."""
    bk, (a, b, c) = w.bk, w.owners
    s0, t0 = bk.owner_stake(c)
    first = bk.propose_upgrade(w.coin.address, sender=a)
    t1 = bk.ballot_info(first).start
    want1 = power(s0, t0, t1)
    assert bk.power_at(c, first) == want1 == s0  # aged in full
    # Restaking after the first ballot: the first ballot still counts the old state.
    boa.env.time_travel(seconds=86400)
    bk.add_meter_to_hive(3, w.meters[5], sender=c)
    assert bk.power_at(c, first) == want1
    boa.env.time_travel(seconds=86400)
    second = bk.propose_upgrade(w.coin.address, sender=b)
    t2 = bk.ballot_info(second).start
    s2, st2 = bk.owner_stake(c)
    assert s2 == s0 + METER_COST // 2
    want2 = power(s2, st2, t2)
    assert bk.power_at(c, second) == want2
    # Restaking after the second ballot too: the second is exact, the first reads the state
    # at the second's start, which weighs no more than the first's (here: less).
    boa.env.time_travel(seconds=86400)
    bk.drop_meter_from_hive(3, w.meters[5], sender=c)
    assert bk.power_at(c, second) == want2
    p1 = bk.power_at(c, first)
    assert p1 == power(s2, st2, t1) < want1
    assert bk.voting_power(c) < want2
    # The vote counts exactly what `power_at` said; total stake at each start is fixed.
    assert bk.ballot_info(first).total_stake == 3 * s0
    bk.vote(first, False, sender=c)
    assert bk.ballot_info(first).no == p1
    assert bk.ballot_info(second).total_stake == 3 * s0 + METER_COST // 2


def test_fresh_stake_weighs_zero_even_for_an_old_staker(w):
    """Stake aged far past the cap does not lend its excess age to a deposit: the start is
    capped to FULL_WEIGHT_AGE ago before it is merged (on main the deposit below made the
    whole new stake count at once)."""
    bk, c = w.bk, w.owners[2]
    boa.env.time_travel(seconds=2 * FULL_WEIGHT_AGE)
    stake, start = bk.owner_stake(c)
    assert now() - start > 2 * FULL_WEIGHT_AGE
    before = bk.voting_power(c)
    assert before == stake
    bk.add_meter_to_hive(3, w.meters[5], sender=c)
    add = METER_COST // 2
    capped = now() - FULL_WEIGHT_AGE
    want_start = -(-(stake * capped + add * now()) // (stake + add))
    assert bk.owner_stake(c) == (stake + add, want_start)
    # The same power as before the deposit (up to the rounding of the start), not more.
    assert before - 1 <= bk.voting_power(c) <= before
    boa.env.time_travel(seconds=FULL_WEIGHT_AGE)
    assert bk.voting_power(c) == stake + add


def test_who_may_propose_and_vote(w):
    """Only owners with power: governance, an outsider, a meter and a fresh owner cannot."""
    bk = w.bk
    ballot = bk.propose_upgrade(w.v2.address, sender=w.owners[0])
    fresh = boa.env.generate_address("fresh")
    meter = boa.env.generate_address("fresh_meter")
    with boa.env.prank(w.gov):
        bk.add_meter(meter, fresh, "SN-F", "Acme")
    w.hvt.transfer(fresh, 10_000 * HVT, sender=w.treasury)
    w.hvt.approve(bk.address, 2**256 - 1, sender=fresh)
    bk.create_hive(w.coin.address, [meter], sender=fresh)  # staked now: weighs zero
    for who in (w.gov, w.attacker, w.meters[0], fresh, w.treasury):
        with boa.reverts("beekeeper: no voting power"):
            bk.propose_upgrade(w.v2.address, sender=who)
        with boa.reverts("beekeeper: no voting power"):
            bk.vote(ballot, True, sender=who)
    with boa.reverts("beekeeper: unknown ballot"):
        bk.vote(ballot + 1, True, sender=w.owners[1])
    with boa.reverts("beekeeper: implementation not a contract"):
        bk.propose_upgrade(w.attacker, sender=w.owners[1])
    assert bk.last_vote(w.owners[0]) == ballot
    assert bk.last_vote(w.owners[1]) == 0
