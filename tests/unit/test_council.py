"""Council (SPEC §2): strict-majority votes on (target, calldata) actions."""

import ape
import pytest

from scripts._protocol import pass_vote
from tests.conftest import ZERO

WEEK = 7 * 86400


@pytest.fixture(scope="module")
def council(project, deployer):
    return deployer.deploy(project.Council)


@pytest.fixture(scope="module")
def voters(accounts):
    """Voters 2..7 to be added (the deployer is the first)."""
    return [accounts[i] for i in range(7, 13)]


def add_voter_data(council, who):
    return council.add_voter.encode_input(who)


@pytest.fixture(scope="module")
def council3(project, deployer, voters):
    """A Council of three voters: deployer, voters[0], voters[1]."""
    c = deployer.deploy(project.Council)
    pass_vote(c, c, add_voter_data(c, voters[0]), [deployer])
    pass_vote(c, c, add_voter_data(c, voters[1]), [deployer, voters[0]])
    return c


def test_deployer_is_first_voter(council, deployer):
    assert council.voters() == [deployer]
    assert council.voter_count() == 1
    assert council.is_voter(deployer)
    assert council.ballot_lifetime() == WEEK


def test_single_voter_passes_alone(council, deployer, voters):
    data = add_voter_data(council, voters[0])
    key = council.action_key(council, data)
    tx = council.vote(council, data, sender=deployer)
    assert tx.return_value is True
    expires = tx.timestamp + WEEK
    assert tx.events == [
        council.BallotOpened(
            key=key, target=council, voter=deployer, data=data, expires_at=expires
        ),
        council.BallotPassed(key=key, target=council, yes=1, voters=1),
        council.VoterAdded(voter=voters[0], voters=2),
    ]
    assert council.voters() == [deployer, voters[0]]
    assert council.open_ballots() == []


def test_one_of_two_does_not_pass(council3, deployer, voters):
    # 3 voters: one YES is 1/3; a second YES passes (2*2 > 3).
    data = add_voter_data(council3, voters[2])
    assert council3.vote(council3, data, sender=deployer).return_value is False
    key = council3.action_key(council3, data)
    b = council3.ballot(key)
    assert (b.yes, b.no, b.voters, b.expired) == (1, 0, 3, False)
    assert b.target == council3.address
    assert b.selector == council3.add_voter.encode_input(voters[2])[:4]
    assert council3.vote_of(key, deployer) == 1
    assert council3.vote_of(key, voters[0]) == 0
    tx = council3.vote(council3, data, sender=voters[0])
    assert tx.return_value is True
    assert tx.events == [
        council3.Voted(key=key, voter=voters[0], yes=2, voters=3),
        council3.BallotPassed(key=key, target=council3, yes=2, voters=3),
        council3.VoterAdded(voter=voters[2], voters=4),
    ]


def test_half_is_not_a_majority(council3, deployer, voters):
    # 4 voters: 2 YES is exactly half and does not pass; the third passes.
    pass_vote(council3, council3, add_voter_data(council3, voters[2]), [deployer, voters[0]])
    assert council3.voter_count() == 4
    data = council3.set_ballot_lifetime.encode_input(86400)
    assert not council3.vote(council3, data, sender=deployer).return_value
    assert not council3.vote(council3, data, sender=voters[0]).return_value
    assert council3.ballot(council3.action_key(council3, data)).yes == 2
    assert council3.vote(council3, data, sender=voters[1]).return_value
    assert council3.ballot_lifetime() == 86400


def test_repeat_flips_the_vote(council3, deployer, voters):
    data = add_voter_data(council3, voters[3])
    key = council3.action_key(council3, data)
    council3.vote(council3, data, sender=deployer)
    tx = council3.vote(council3, data, sender=deployer)
    assert tx.events == [
        council3.VoteFlipped(key=key, voter=deployer, support=False, yes=0, voters=3)
    ]
    assert council3.vote_of(key, deployer) == 2
    b = council3.ballot(key)
    assert (b.yes, b.no) == (0, 1)
    # NO -> YES, then another YES passes it.
    tx = council3.vote(council3, data, sender=deployer)
    assert tx.events == [
        council3.VoteFlipped(key=key, voter=deployer, support=True, yes=1, voters=3)
    ]
    assert council3.vote_of(key, deployer) == 1
    assert council3.vote(council3, data, sender=voters[1]).return_value
    assert council3.is_voter(voters[3])


def test_removed_voter_weight_leaves_open_ballots(council3, deployer, voters):
    # voters[0] opens A with a YES; removing voters[0] withdraws A (its opener is gone), and
    # B's NO by voters[0] leaves B's tally. (Weights of non-openers: test_council_liveness.)
    data_a = add_voter_data(council3, voters[4])
    key_a = council3.action_key(council3, data_a)
    council3.vote(council3, data_a, sender=voters[0])
    assert council3.ballot(key_a).yes == 1
    data_b = add_voter_data(council3, voters[5])
    key_b = council3.action_key(council3, data_b)
    council3.vote(council3, data_b, sender=deployer)
    tx = pass_vote(
        council3, council3, council3.remove_voter.encode_input(voters[0]), [deployer, voters[1]]
    )
    assert council3.BallotWithdrawn(key=key_a, opener=voters[0]) in tx.events
    assert council3.voters() == [deployer, voters[1]]
    assert council3.ballot(key_a).yes == 0
    assert [b.key for b in council3.open_ballots()] == [bytes(key_b)]
    with ape.reverts("council: not a voter"):
        council3.vote(council3, data_a, sender=voters[0])
    # 1 of 2 is not a majority; 2 of 2 is.
    assert council3.ballot(key_b).voters == 2
    assert council3.vote(council3, data_b, sender=voters[1]).return_value


def test_cannot_remove_last_voter(council, deployer):
    data = council.remove_voter.encode_input(deployer)
    with ape.reverts("council: last voter"):
        council.vote(council, data, sender=deployer)
    assert council.voters() == [deployer]


def test_failing_action_reverts_the_passing_vote(council3, deployer, voters):
    data = add_voter_data(council3, deployer)  # already a voter
    council3.vote(council3, data, sender=deployer)
    with ape.reverts("council: already a voter"):
        council3.vote(council3, data, sender=voters[0])
    # The ballot is still open with one YES.
    assert council3.ballot(council3.action_key(council3, data)).yes == 1


def test_ballot_expires_and_reopens(council3, deployer, voters, chain):
    data = add_voter_data(council3, voters[5])
    key = council3.action_key(council3, data)
    council3.vote(council3, data, sender=deployer)
    chain.pending_timestamp += WEEK + 1
    chain.mine()
    assert council3.ballot(key).expired
    tx = council3.vote(council3, data, sender=voters[0])
    # The old YES expired with its ballot; voters[0] opened a fresh one.
    assert tx.return_value is False
    assert [e.event_name for e in tx.events] == ["BallotExpired", "BallotOpened"]
    assert council3.ballot(key).yes == 1
    assert council3.vote_of(key, deployer) == 0


def test_close_expired(council3, deployer, voters, chain, attacker):
    data = add_voter_data(council3, voters[5])
    key = council3.action_key(council3, data)
    council3.vote(council3, data, sender=deployer)
    with ape.reverts("council: ballot not expired"):
        council3.close_expired(key, sender=attacker)
    chain.pending_timestamp += WEEK + 1
    tx = council3.close_expired(key, sender=attacker)
    assert tx.events == [council3.BallotExpired(key=key)]
    assert council3.open_ballots() == []
    with ape.reverts("council: no such ballot"):
        council3.close_expired(key, sender=attacker)


def test_passed_action_can_be_voted_again(council3, deployer, voters):
    data = council3.set_ballot_lifetime.encode_input(86400)
    pass_vote(council3, council3, data, [deployer, voters[0]])
    pass_vote(
        council3, council3, council3.set_ballot_lifetime.encode_input(WEEK), [deployer, voters[0]]
    )
    key = council3.action_key(council3, data)
    assert council3.ballot(key).yes == 0
    assert not council3.vote(council3, data, sender=deployer).return_value
    assert council3.ballot(key).yes == 1
    assert council3.vote(council3, data, sender=voters[1]).return_value
    assert council3.ballot_lifetime() == 86400


def test_open_ballots_lists_tallies(council3, deployer, voters):
    d1 = add_voter_data(council3, voters[3])
    d2 = add_voter_data(council3, voters[4])
    council3.vote(council3, d1, sender=deployer)
    council3.vote(council3, d2, sender=voters[0])
    council3.vote(council3, d2, sender=voters[0])  # flipped to NO
    listed = {b.key: (b.yes, b.no) for b in council3.open_ballots()}
    assert listed == {
        council3.action_key(council3, d1): (1, 0),
        council3.action_key(council3, d2): (0, 1),
    }


@pytest.mark.parametrize("role", ["deployer", "attacker", "alice"])
def test_governed_functions_only_by_vote(council3, role, request, voters):
    caller = request.getfixturevalue(role)
    with ape.reverts("council: only by vote"):
        council3.add_voter(caller, sender=caller)
    with ape.reverts("council: only by vote"):
        council3.remove_voter(voters[0], sender=caller)
    with ape.reverts("council: only by vote"):
        council3.set_ballot_lifetime(86400, sender=caller)


def test_non_voter_cannot_vote(council3, attacker):
    with ape.reverts("council: not a voter"):
        council3.vote(council3, add_voter_data(council3, attacker), sender=attacker)


def test_bad_actions_revert(council3, deployer, voters):
    with ape.reverts("council: zero target"):
        council3.vote(ZERO, b"\x01\x02\x03\x04", sender=deployer)
    with ape.reverts("council: no selector"):
        council3.vote(council3, b"\x01", sender=deployer)
    with ape.reverts("council: zero voter"):
        council3.vote(council3, add_voter_data(council3, ZERO), sender=deployer)
        council3.vote(council3, add_voter_data(council3, ZERO), sender=voters[0])
    bad = council3.set_ballot_lifetime.encode_input(60)
    council3.vote(council3, bad, sender=deployer)
    with ape.reverts("council: lifetime out of range"):
        council3.vote(council3, bad, sender=voters[0])
    gone = council3.remove_voter.encode_input(voters[5])
    council3.vote(council3, gone, sender=voters[1])  # the deployer's two ballots are used
    with ape.reverts("council: not a voter"):
        council3.vote(council3, gone, sender=voters[0])


def test_voter_bound(project, deployer, accounts):
    c = deployer.deploy(project.Council)
    assert c.MAX_VOTERS() == 64
    # Majority of 4 of 7 and 51 of 100 are exact integer rules: 2 * yes > voters.
    assert 2 * 4 > 7 and not 2 * 50 > 100 and 2 * 51 > 100
