"""The Council at its bounds, on titanoboa (thousands of votes; too slow for Anvil).

- A 64-voter council replaces every voter within one day (issue 9, finding 3): a removed
  voter's slot is free again at once, with none of their votes left in any ballot.
- With the open list full (every voter at their quota of two ballots, the leaving voter's
  vote on every one), removing a voter clears that vote from all 128 ballots and withdraws
  its own; the freed slot is reused at once with no vote left anywhere. (Its gas, measured
  on Anvil, is the worst-case row of docs/gas.md.)
"""

import boa

from tests.fuzz import boa_env

DAY = 86400


def passes(council, data, voters):
    """Votes YES in turn until the action executes."""
    for voter in voters:
        if council.vote(council.address, data, sender=voter):
            return
    raise AssertionError("no majority")


def full_council():
    deployer = boa.env.generate_address("deployer")
    with boa.env.prank(deployer):
        council = boa_env.quiet(boa_env.deployer("Council").deploy())
    members = [deployer]
    for voter in boa_env.accounts(63, "member"):
        passes(council, council.add_voter.prepare_calldata(voter), members)
        members.append(voter)
    assert council.voter_count() == 64
    return council, members


def test_every_voter_replaced_within_a_day():
    council, members = full_council()
    start = boa.env.evm.patch.timestamp
    newcomers = boa_env.accounts(64, "newcomer")
    for old, new in zip(list(members), newcomers, strict=True):
        # Votes of the old voter sit on an open ballot of someone else when it leaves.
        probe = council.set_ballot_lifetime.prepare_calldata(3600 + len(newcomers))
        voters_now = [v for v in members if v != old]
        prober = voters_now[-1]  # not the first voter, who opens the removal and the addition
        council.vote(council.address, probe, sender=prober)
        council.vote(council.address, probe, sender=old)
        key = council.action_key(council.address, probe)
        assert council.ballot(key).yes == 2
        passes(council, council.remove_voter.prepare_calldata(old), voters_now)
        members.remove(old)
        assert council.ballot(key).yes == 1  # the old voter's weight left at once
        passes(council, council.add_voter.prepare_calldata(new), members)
        members.append(new)
        assert council.vote_of(key, new) == 0  # the reused slot carries no vote
        council.withdraw(key, sender=prober)
        boa.env.time_travel(seconds=60)
    assert boa.env.evm.patch.timestamp - start < DAY
    assert sorted(council.voters()) == sorted(newcomers)
    assert council.voter_count() == 64


def test_removal_with_the_open_list_full_fits_a_block():
    council, members = full_council()
    target = members[-1]
    keys = []
    for i, voter in enumerate(members):
        # The first voter keeps one of their two for the removal ballot itself.
        for j in range(1 if i == 0 else 2):
            data = council.set_ballot_lifetime.prepare_calldata(3600 + 2 * i + j)
            council.vote(council.address, data, sender=voter)
            if voter != target:
                # The voter to be removed votes on every other ballot: its bit is everywhere.
                council.vote(council.address, data, sender=target)
            keys.append(council.action_key(council.address, data))
    data = council.remove_voter.prepare_calldata(target)
    council.vote(council.address, data, sender=members[0])
    assert len(council.open_ballots()) == council.MAX_OPEN_BALLOTS() == 128
    passes(council, data, members[1:-1])
    opened = council.open_ballots()
    assert len(opened) == 125  # the removal passed; the removed voter's two were withdrawn
    assert all(b.yes == 1 for b in opened)  # only the opener's YES is left on each
    # The next voter takes the freed slot at once: no ballot holds a vote for it.
    newcomer = boa.env.generate_address("newcomer")
    council.withdraw(keys[1], sender=members[1])  # at quota: make room for the addition
    keys.pop(1)
    passes(council, council.add_voter.prepare_calldata(newcomer), members[1:-1])
    assert len(council.open_ballots()) == 124
    assert all(b.yes == 1 for b in council.open_ballots())
    assert all(council.vote_of(k, newcomer) == 0 for k in keys)
