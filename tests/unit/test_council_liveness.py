"""Council liveness and execution rules (issue 9, findings 1-3; SPEC section 2).

A minority cannot freeze governance (per-voter quota of open ballots, withdrawal, removal
withdraws the removed voter's ballots); only a YES or an explicit `execute` runs an action;
a removed voter's slot is reusable at once with no stale vote in any ballot.
"""

import ape
import pytest

from scripts._protocol import pass_vote

DAY = 86400
WEEK = 7 * DAY


@pytest.fixture(scope="module")
def voters(accounts):
    return [accounts[i] for i in range(20, 30)]


@pytest.fixture(scope="module")
def council5(project, deployer, voters):
    """Five voters: the deployer and voters[0..3]."""
    c = deployer.deploy(project.Council)
    for i in range(4):
        pass_vote(c, c, c.add_voter.encode_input(voters[i]), [deployer, *voters[:i]])
    assert c.voter_count() == 5
    return c


def lifetime(council, seconds):
    return council.set_ballot_lifetime.encode_input(seconds)


def test_quota_bounds(council5):
    assert council5.BALLOTS_PER_VOTER() == 2
    assert council5.MAX_OPEN_BALLOTS() == council5.MAX_VOTERS() * 2 == 128


def test_minority_cannot_freeze_governance(council5, deployer, voters):
    """Two of five voters open every ballot they may on actions that fail; the majority still
    passes what it wants, including removing them (which withdraws their ballots)."""
    minority = voters[:2]
    failing = [lifetime(council5, 60 + i) for i in range(5)]  # below the 1 h minimum
    keys = []
    for i, voter in enumerate(minority):
        for j in range(2):
            data = failing[2 * i + j]
            council5.vote(council5, data, sender=voter)
            keys.append(council5.action_key(council5, data))
        assert council5.ballots_opened(voter) == 2
        with ape.reverts("council: ballot quota used"):
            council5.vote(council5, failing[4], sender=voter)
    assert len(council5.open_ballots()) == 4
    # The majority passes a valid action...
    pass_vote(council5, council5, lifetime(council5, DAY), [deployer, voters[2], voters[3]])
    assert council5.ballot_lifetime() == DAY
    # ...and removes the minority: each removal withdraws that voter's ballots.
    majority = [deployer, voters[2], voters[3]]
    tx = council5.vote(council5, council5.remove_voter.encode_input(minority[0]), sender=deployer)
    council5.vote(council5, council5.remove_voter.encode_input(minority[0]), sender=voters[2])
    tx = council5.vote(council5, council5.remove_voter.encode_input(minority[0]), sender=voters[3])
    assert tx.return_value is True
    withdrawn = [e for e in tx.events if e.event_name == "BallotWithdrawn"]
    assert {e.key for e in withdrawn} == {bytes(k) for k in keys[:2]}
    assert all(e.opener == minority[0].address for e in withdrawn)
    pass_vote(council5, council5, council5.remove_voter.encode_input(minority[1]), majority)
    assert council5.open_ballots() == []
    assert council5.voter_count() == 3


def test_withdraw_own_ballot_frees_quota(council5, deployer, voters, attacker):
    d1, d2, d3 = (lifetime(council5, DAY + i) for i in range(3))
    council5.vote(council5, d1, sender=voters[0])
    council5.vote(council5, d2, sender=voters[0])
    key = council5.action_key(council5, d1)
    council5.vote(council5, d1, sender=voters[1])  # others may support it
    with ape.reverts("council: not the opener"):
        council5.withdraw(key, sender=voters[1])
    with ape.reverts("council: not the opener"):
        council5.withdraw(key, sender=attacker)
    tx = council5.withdraw(key, sender=voters[0])
    assert tx.events == [council5.BallotWithdrawn(key=key, opener=voters[0])]
    assert council5.ballot(key).yes == 0
    assert council5.ballots_opened(voters[0]) == 1
    with ape.reverts("council: no such ballot"):
        council5.withdraw(key, sender=voters[0])
    council5.vote(council5, d3, sender=voters[0])  # the freed quota is usable
    assert council5.ballots_opened(voters[0]) == 2


def test_closing_an_expired_ballot_frees_its_openers_quota(council5, voters, attacker, chain):
    d1, d2 = lifetime(council5, DAY), lifetime(council5, 2 * DAY)
    council5.vote(council5, d1, sender=voters[0])
    council5.vote(council5, d2, sender=voters[0])
    chain.pending_timestamp += WEEK
    council5.close_expired(council5.action_key(council5, d1), sender=attacker)
    assert council5.ballots_opened(voters[0]) == 1
    # Voting on an expired ballot's action drops it (freeing its opener) and opens afresh.
    tx = council5.vote(council5, d2, sender=voters[1])
    assert [e.event_name for e in tx.events] == ["BallotExpired", "BallotOpened"]
    assert council5.ballots_opened(voters[0]) == 0
    assert council5.ballots_opened(voters[1]) == 1
    assert council5.ballot(council5.action_key(council5, d2)).opener == voters[1]


def stale_majorities(council5, deployer, voters):
    """Ballots X and Y with YES of voters[1] and voters[2] (2 of 5); then voters[3] and
    voters[0] are removed: both hold 2 of 3 without having run."""
    x, y = lifetime(council5, DAY), lifetime(council5, 2 * DAY)
    for data in (x, y):
        council5.vote(council5, data, sender=voters[1])
        council5.vote(council5, data, sender=voters[2])
    pass_vote(
        council5,
        council5,
        council5.remove_voter.encode_input(voters[3]),
        [deployer, voters[0], voters[3]],
    )
    pass_vote(
        council5,
        council5,
        council5.remove_voter.encode_input(voters[0]),
        [deployer, voters[0], voters[1]],
    )
    for data in (x, y):
        b = council5.ballot(council5.action_key(council5, data))
        assert (b.yes, b.voters) == (2, 3)
    assert council5.ballot_lifetime() == WEEK
    return x, y


def test_a_no_vote_never_executes(council5, deployer, voters):
    x, _ = stale_majorities(council5, deployer, voters)
    key = council5.action_key(council5, x)
    tx = council5.vote(council5, x, sender=voters[1])  # YES -> NO
    assert tx.return_value is False
    assert tx.events == [
        council5.VoteFlipped(key=key, voter=voters[1], support=False, yes=1, voters=3)
    ]
    assert council5.ballot_lifetime() == WEEK
    # NO -> YES is a YES: it reaches 2 of 3 and executes.
    tx = council5.vote(council5, x, sender=voters[1])
    assert tx.return_value is True
    assert council5.ballot_lifetime() == DAY


def test_execute_runs_a_ballot_that_holds_a_majority(council5, deployer, voters, attacker, chain):
    x, y = stale_majorities(council5, deployer, voters)
    with ape.reverts("council: not a voter"):
        council5.execute(council5, y, sender=attacker)
    tx = council5.execute(council5, y, sender=deployer)
    key_y = council5.action_key(council5, y)
    assert tx.events == [
        council5.BallotPassed(key=key_y, target=council5, yes=2, voters=3),
        council5.BallotLifetimeSet(lifetime=2 * DAY),
    ]
    with ape.reverts("council: no such ballot"):
        council5.execute(council5, y, sender=deployer)
    council5.vote(council5, x, sender=voters[2])  # YES -> NO: 1 of 3
    with ape.reverts("council: no majority"):
        council5.execute(council5, x, sender=deployer)
    z = lifetime(council5, 3 * DAY)
    council5.vote(council5, z, sender=voters[1])
    chain.pending_timestamp += 2 * DAY + 1
    with ape.reverts("council: ballot expired"):
        council5.execute(council5, z, sender=deployer)


def test_removed_slot_is_reused_at_once_with_no_stale_vote(council5, deployer, voters):
    z = lifetime(council5, DAY)
    key = council5.action_key(council5, z)
    council5.vote(council5, z, sender=deployer)  # opener
    council5.vote(council5, z, sender=voters[0])  # YES: 2 of 5
    council5.vote(council5, z, sender=voters[0])  # and NO
    council5.vote(council5, z, sender=voters[0])  # and YES again
    assert council5.ballot(key).yes == 2
    pass_vote(
        council5,
        council5,
        council5.remove_voter.encode_input(voters[0]),
        [deployer, voters[1], voters[2]],
    )
    b = council5.ballot(key)
    assert (b.yes, b.no, b.voters) == (1, 0, 4)
    # The new voter gets the freed slot the same day; the old vote is gone from the ballot.
    pass_vote(
        council5, council5, council5.add_voter.encode_input(voters[5]), [deployer, *voters[1:3]]
    )
    assert council5.voters()[1] == voters[5]  # slot 1, freed by voters[0]
    assert council5.vote_of(key, voters[5]) == 0
    assert council5.ballot(key).yes == 1
    council5.vote(council5, z, sender=voters[5])
    assert council5.ballot(key).yes == 2
