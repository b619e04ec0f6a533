"""Who governs the bridge (SPEC section 6, issue 12): only a passed Council vote changes the
relayer set, M, the peer, the token list, the limits and the pause (Poly's keeper was changed
by a message nobody voted); the token buckets revert with the time to wait; the pause stops
lock, burn, unlock and refund, never the Council.
"""

import ape
import pytest
from ape import chain

from scripts._bridge import ACTION_DELIVERED, ACTION_REFUND, ACTION_UNLOCK, INBOUND, OUTBOUND
from tests.bridge_fixtures import CAPACITY, ENT, MAX_TRANSFER, RATE, REMOTE_CHAIN, make_bridges
from tests.conftest import ZERO


@pytest.fixture(scope="module")
def relayers(accounts):
    return [accounts[i] for i in range(30, 34)]


@pytest.fixture(scope="module")
def voter(accounts):
    return accounts[13]


@pytest.fixture(scope="module")
def b(project, deployer, accounts, voter, alice, bob, relayers):
    voters = [deployer, voter, accounts[14]]
    return make_bridges(project, deployer, voters, relayers[:3], 2, [alice, bob])


@pytest.fixture(scope="module")
def submitter(accounts):
    return accounts[20]


@pytest.fixture(autouse=True)
def _fresh_ledger_of_flights(b):
    b.in_flight.clear()


@pytest.fixture(scope="module")
def solo(project, deployer, b):
    """A bridge governed by the deployer's account, to check arguments without votes."""
    bridge = deployer.deploy(project.Bridge, deployer, 77)
    bridge.set_peer(REMOTE_CHAIN, b.remote, sender=deployer)
    return bridge


def privileged_calls(b, bridge, local, relayers):
    return [
        ("set_relayers", (relayers, 1)),
        ("set_peer", (REMOTE_CHAIN, b.remote)),
        ("list_token", (local, local, True)),
        ("delist_token", (local,)),
        ("set_limit", (local, OUTBOUND, CAPACITY, RATE, MAX_TRANSFER)),
        ("set_paused", (True,)),
    ]


def test_every_privileged_function_against_every_role(
    b, deployer, voter, alice, attacker, relayers, submitter
):
    # Each role that must not call: the deployer and a voter (their own account, not a
    # vote), a relayer, a holder, an attacker.
    roles = [deployer, voter, relayers[0], alice, attacker]
    for bridge, local in ((b.home, b.token), (b.remote, b.wrapped)):
        for method, args in privileged_calls(b, bridge, local, relayers):
            for role in roles:
                with ape.reverts("bridge: only by Council vote"):
                    getattr(bridge, method).call(*args, sender=role)
    # And the same calls do pass through a vote (so the guard is the only thing in the way).
    b.governed(b.home, "set_paused", True)
    assert b.home.paused()


def test_set_change_not_voted_changes_nothing(b, alice, attacker, relayers, submitter):
    # One YES of three voters is no majority: nothing executes.
    data = b.remote.set_relayers.encode_input([attacker], 1)
    assert not b.council.vote(b.remote, data, sender=b.voters[0]).return_value
    assert b.remote.relayers() == [r.address for r in b.relayers]
    assert b.remote.threshold() == 2
    transfer = b.lock(alice, ENT)
    with ape.reverts("bridge: fewer than M signatures"):
        b.remote.unlock(
            transfer, b.sigs(b.remote, transfer, ACTION_UNLOCK, [attacker]), sender=attacker
        )


def test_relayer_set_change_by_vote_retires_the_old_set(b, alice, relayers, submitter):
    transfer = b.lock(alice, ENT)
    old = b.sigs(b.remote, transfer, ACTION_UNLOCK)
    new_set = sorted([relayers[1], relayers[3]], key=lambda a: int(a.address, 16))
    receipt = b.governed(b.remote, "set_relayers", new_set, 2)
    assert b.remote.RelayersSet(epoch=2, relayers=new_set, threshold=2) in receipt.events
    assert not b.remote.is_relayer(relayers[0]) and b.remote.is_relayer(relayers[3])
    with ape.reverts("bridge: signer not a relayer"):
        b.remote.unlock(transfer, old, sender=submitter)
    b.remote.unlock(transfer, b.sigs(b.remote, transfer, ACTION_UNLOCK, new_set), sender=submitter)
    assert b.wrapped.balanceOf(alice) == ENT


def test_set_and_listing_arguments_are_checked(project, solo, deployer, relayers, b):
    r0, r1 = relayers[0], relayers[1]
    for args, reason in [
        (([r0], 0), "bridge: threshold out of range"),
        (([r0], 2), "bridge: threshold out of range"),
        (([], 1), "bridge: threshold out of range"),
        (([r0, ZERO], 1), "bridge: zero relayer"),
        (([r0, r1, r0], 2), "bridge: duplicate relayer"),
    ]:
        with ape.reverts(reason):
            solo.set_relayers.call(*args, sender=deployer)
    with ape.reverts("bridge: bad peer chain"):
        solo.set_peer.call(77, b.remote, sender=deployer)
    with ape.reverts("bridge: zero peer"):
        solo.set_peer.call(REMOTE_CHAIN, ZERO, sender=deployer)
    with ape.reverts("bridge: not minted by this bridge"):
        solo.list_token.call(b.wrapped, b.token, False, sender=deployer)
    with ape.reverts("bridge: zero peer token"):
        solo.list_token.call(b.token, ZERO, True, sender=deployer)
    solo.list_token(b.token, b.wrapped, True, sender=deployer)
    other = deployer.deploy(project.MockToken, "OTHER", 18)
    with ape.reverts("bridge: peer token mapped"):
        solo.list_token.call(other, b.wrapped, True, sender=deployer)
    with ape.reverts("bridge: token mapped"):
        solo.list_token.call(b.token, other, True, sender=deployer)
    with ape.reverts("bridge: max above capacity"):
        solo.set_limit.call(b.token, OUTBOUND, 10, 1, 11, sender=deployer)
    with ape.reverts("bridge: bad direction"):
        solo.set_limit.call(b.token, 2, 10, 1, 10, sender=deployer)
    with ape.reverts("bridge: capacity too large"):
        solo.set_limit.call(b.token, OUTBOUND, 2**96, 1, 10, sender=deployer)
    with ape.reverts("bridge: token not listed"):
        solo.set_limit.call(other, OUTBOUND, 10, 1, 10, sender=deployer)
    with ape.reverts("bridge: zero governance"):
        deployer.deploy(project.Bridge, ZERO, 77)


def test_outbound_limit_reverts_with_the_time_to_wait(b, alice):
    b.governed(b.home, "set_limit", b.token, OUTBOUND, 3600, 1, 3600)
    b.token.approve(b.home, 10**6, sender=alice)
    with ape.reverts("bridge: over per-transfer max"):
        b.home.lock(b.token, 3601, REMOTE_CHAIN, alice, sender=alice)
    drained = b.home.lock(b.token, 3600, REMOTE_CHAIN, alice, sender=alice)
    start = chain.blocks[drained.block_number].timestamp
    chain.pending_timestamp = start + 600
    with ape.reverts("bridge: over limit, wait 3000 s"):
        b.home.lock(b.token, 3600, REMOTE_CHAIN, alice, sender=alice)
    chain.pending_timestamp = start + 3600
    b.home.lock(b.token, 3600, REMOTE_CHAIN, alice, sender=alice)
    assert b.home.limit(b.token, OUTBOUND).available == 0
    # A bucket with no refill stays closed once drained.
    b.governed(b.home, "set_limit", b.token, OUTBOUND, 10, 0, 10)
    b.home.lock(b.token, 10, REMOTE_CHAIN, alice, sender=alice)
    with ape.reverts("bridge: over limit, no refill"):
        b.home.lock(b.token, 1, REMOTE_CHAIN, alice, sender=alice)


def test_inbound_limit_holds_unlocks_back(b, alice, submitter):
    b.governed(b.remote, "set_limit", b.wrapped, INBOUND, 100 * ENT, ENT, 100 * ENT)
    first, second = b.lock(alice, 80 * ENT), b.lock(alice, 80 * ENT)
    unlocked = b.deliver(first, submitter)
    sigs = b.sigs(b.remote, second, ACTION_UNLOCK)
    unlocked_at = chain.blocks[unlocked.block_number].timestamp
    chain.pending_timestamp = unlocked_at + 10
    # 20 left after the first, +1 per second: the 60 missing take 60 s, 10 have gone by.
    with ape.reverts("bridge: over limit, wait 50 s"):
        b.remote.unlock(second, sigs, sender=submitter)
    chain.pending_timestamp = unlocked_at + 60
    b.remote.unlock(second, sigs, sender=submitter)
    b.in_flight.pop(second.id())
    b.assert_conserved()


def test_pause_stops_transfers_never_the_council(b, alice, bob, relayers, submitter):
    to_remote = b.lock(alice, 20 * ENT, recipient=bob)
    b.deliver(b.lock(alice, 20 * ENT, recipient=bob), submitter)
    back = b.burn(bob, 5 * ENT)
    b.governed(b.home, "set_paused", True)
    b.governed(b.remote, "set_paused", True)
    b.token.approve(b.home, ENT, sender=alice)
    with ape.reverts("bridge: paused"):
        b.home.lock(b.token, ENT, REMOTE_CHAIN, alice, sender=alice)
    with ape.reverts("bridge: paused"):
        b.remote.burn(b.wrapped, ENT, chain.chain_id, bob, sender=bob)
    with ape.reverts("bridge: paused"):
        b.remote.unlock(to_remote, b.sigs(b.remote, to_remote, ACTION_UNLOCK), sender=submitter)
    with ape.reverts("bridge: paused"):
        b.remote.refund(back, b.sigs(b.remote, back, ACTION_REFUND), sender=submitter)
    # The Council still governs both bridges while they are paused.
    b.governed(b.remote, "set_relayers", b.relayers, 1)
    b.governed(b.remote, "set_limit", b.wrapped, INBOUND, CAPACITY, RATE, MAX_TRANSFER)
    b.governed(b.remote, "set_paused", False)
    b.governed(b.home, "set_paused", False)
    b.remote.unlock(to_remote, b.sigs(b.remote, to_remote, ACTION_UNLOCK), sender=submitter)
    b.in_flight.pop(to_remote.id())
    b.home.mark_transferred(
        to_remote, b.sigs(b.home, to_remote, ACTION_DELIVERED), sender=submitter
    )
    b.assert_conserved()
