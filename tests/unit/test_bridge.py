"""Bridge flows and the post-mortems of issue 12 as reverts (SPEC section 6): lock -> unlock
(mint) -> mark_transferred and back by burn -> unlock (release); every known bridge failure
(Nomad's zero or reused message, Wormhole's and Harmony's signature checks, Poly's unvoted
keeper change, Qubit's token with no code) is a transaction that reverts with its reason.
Conservation after every flow: home locked balance = remote wrapped supply + in flight.
"""

import ape
import pytest
from ape import chain

from scripts._bridge import (
    ACTION_CANCEL,
    ACTION_DELIVERED,
    ACTION_REFUND,
    ACTION_UNLOCK,
    TRANSFER_TYPEHASH,
)
from tests.bridge_fixtures import ENT, REMOTE_CHAIN, make_bridges
from tests.conftest import ZERO

HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def relayers(accounts):
    return [accounts[i] for i in range(30, 35)]


@pytest.fixture(scope="module")
def b(project, deployer, accounts, alice, bob, relayers):
    """Three relayers of five possible, M = 2."""
    voters = [deployer, accounts[13], accounts[14]]
    return make_bridges(project, deployer, voters, relayers[:3], 2, [alice, bob])


@pytest.fixture(scope="module")
def submitter(accounts):
    """Anyone may submit attested calls: not a relayer, not a voter."""
    return accounts[20]


def test_ids_match_the_off_chain_encoding(b, alice):
    assert b.home.TRANSFER_TYPEHASH() == TRANSFER_TYPEHASH
    transfer = b.lock(alice, 5 * ENT, recipient=alice)
    assert b.home.transfer_id(transfer) == transfer.id()
    assert transfer.source_chain == chain.chain_id and transfer.dest_chain == REMOTE_CHAIN
    assert transfer.nonce == 0 and b.home.next_nonce(b.token) == 1


def test_round_trip_lock_mint_burn_release(b, alice, bob, submitter):
    transfer = b.lock(alice, 100 * ENT, recipient=bob)
    assert b.home.is_pending(b.token, transfer.nonce)
    b.assert_conserved()
    receipt = b.deliver(transfer, submitter)
    assert receipt.events == [
        b.wrapped.Transfer(sender=ZERO, receiver=bob, value=100 * ENT),
        b.remote.TransferUnlocked(
            id=transfer.id(), token=b.wrapped, recipient=bob, nonce=0, amount=100 * ENT
        ),
    ]
    assert b.wrapped.balanceOf(bob) == 100 * ENT
    assert not b.home.is_pending(b.token, transfer.nonce)
    assert b.remote.is_processed(b.wrapped, transfer.nonce)
    b.assert_conserved()

    back = b.burn(bob, 40 * ENT, recipient=alice)
    assert b.wrapped.totalSupply() == 60 * ENT
    b.assert_conserved()
    before = b.token.balanceOf(alice)
    b.deliver(back, submitter)
    assert b.token.balanceOf(alice) == before + 40 * ENT
    assert b.token.balanceOf(b.home) == 60 * ENT == b.wrapped.totalSupply()
    b.assert_conserved()


def test_one_of_one_for_a_private_community(b, alice, bob, relayers, submitter):
    b.governed(b.remote, "set_relayers", [relayers[4]], 1)
    transfer = b.lock(alice, ENT, recipient=bob)
    b.remote.unlock(transfer, b.sigs(b.remote, transfer, ACTION_UNLOCK, [relayers[4]]), sender=bob)
    assert b.wrapped.balanceOf(bob) == ENT


def test_reused_id_is_rejected(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    b.deliver(transfer, submitter)
    sigs = b.sigs(b.remote, transfer, ACTION_UNLOCK)
    with ape.reverts("bridge: already processed"):
        b.remote.unlock(transfer, sigs, sender=submitter)
    with ape.reverts("bridge: not pending"):
        b.home.mark_transferred(
            transfer, b.sigs(b.home, transfer, ACTION_DELIVERED), sender=submitter
        )
    b.assert_conserved()


def test_zero_message_and_unconfigured_bridge_are_rejected(project, b, alice, deployer, submitter):
    zero = (0, ZERO, 0, 0, ZERO, ZERO, ZERO, 0, 0)
    with ape.reverts("bridge: wrong destination"):
        b.remote.unlock(zero, [], sender=submitter)
    # Nomad accepted the zero root as proven: a bridge with no relayer set must accept
    # nothing, not a message that "needs" zero signatures.
    fresh = deployer.deploy(project.Bridge, deployer, 77)
    fresh.set_peer(chain.chain_id, b.home, sender=deployer)
    fresh.list_token(b.token, b.token, True, sender=deployer)
    message = (
        chain.chain_id,
        b.home.address,
        0,
        77,
        alice.address,
        alice.address,
        b.token.address,
        1,
        0,
    )
    with ape.reverts("bridge: no relayer set"):
        fresh.unlock(message, [], sender=submitter)
    with ape.reverts("bridge: paused"):
        pass_through_paused(fresh, deployer, message, submitter)


def pass_through_paused(bridge, governance, message, submitter):
    bridge.set_paused(True, sender=governance)
    bridge.unlock(message, [], sender=submitter)


def test_signer_outside_the_set(b, alice, relayers, attacker, submitter):
    transfer = b.lock(alice, ENT)
    for signers in ([relayers[0], attacker], [relayers[3], relayers[4]]):
        sigs = b.sigs(b.remote, transfer, ACTION_UNLOCK, signers)
        with ape.reverts("bridge: signer not a relayer"):
            b.remote.unlock(transfer, sigs, sender=submitter)


def test_duplicate_or_unsorted_signers(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    one, two = b.sigs(b.remote, transfer, ACTION_UNLOCK, b.relayers[:2])
    for sigs in ([one, one], [two, one], [one, two, one]):
        with ape.reverts("bridge: signers not ascending"):
            b.remote.unlock(transfer, sigs, sender=submitter)


def test_fewer_than_m_signatures(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    (one,) = b.sigs(b.remote, transfer, ACTION_UNLOCK, b.relayers[:1])
    for sigs in ([], [one]):
        with ape.reverts("bridge: fewer than M signatures"):
            b.remote.unlock(transfer, sigs, sender=submitter)


def test_ecrecover_zero_and_malleable_signatures(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    one, two = b.sigs(b.remote, transfer, ACTION_UNLOCK, b.relayers[:2])
    with ape.reverts("bridge: bad signature"):
        b.remote.unlock(transfer, [(0, one[1], one[2]), two], sender=submitter)
    # The high-s twin recovers the same signer: refused, so a signature has one encoding.
    high_s = (SECP_N - int.from_bytes(one[2], "big")).to_bytes(32, "big")
    assert int.from_bytes(high_s, "big") > HALF_N
    twin = (55 - one[0], one[1], high_s)
    with ape.reverts("bridge: malleable signature"):
        b.remote.unlock(transfer, [twin, two], sender=submitter)


def test_attestations_do_not_replay_across_actions_or_bridges(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    for bridge, action in (
        (b.remote, ACTION_CANCEL),
        (b.remote, ACTION_DELIVERED),
        (b.home, ACTION_UNLOCK),
    ):
        with ape.reverts("bridge: signer not a relayer"):
            b.remote.unlock(transfer, b.sigs(bridge, transfer, action), sender=submitter)


def test_wrong_source_chain_bridge_or_destination(b, alice, submitter):
    transfer = b.lock(alice, ENT)
    cases = [
        (transfer.replace(source_chain=REMOTE_CHAIN), "bridge: wrong source chain"),
        (transfer.replace(source_chain=1), "bridge: wrong source chain"),
        (transfer.replace(source_bridge=b.remote.address), "bridge: wrong source bridge"),
        (transfer.replace(source_bridge=alice.address), "bridge: wrong source bridge"),
        (transfer.replace(dest_chain=chain.chain_id), "bridge: wrong destination"),
    ]
    for forged, reason in cases:
        # Signed by the real relayers: the check, not the signatures, stops it.
        with ape.reverts(reason):
            b.remote.unlock(forged, b.sigs(b.remote, forged, ACTION_UNLOCK), sender=submitter)
    # The source side refuses the peer's transfers as its own.
    with ape.reverts("bridge: wrong source bridge"):
        b.home.mark_transferred(
            transfer.replace(source_bridge=b.remote.address), [], sender=submitter
        )


def test_token_not_listed_or_without_code(project, b, deployer, alice, attacker, submitter):
    transfer = b.lock(alice, ENT)
    other = deployer.deploy(project.MockToken, "FAKE", 18)
    forged = transfer.replace(token=other.address)
    with ape.reverts("bridge: token not listed"):
        b.remote.unlock(forged, b.sigs(b.remote, forged, ACTION_UNLOCK), sender=submitter)
    other.mint(attacker, ENT, sender=attacker)
    other.approve(b.home, ENT, sender=attacker)
    with ape.reverts("bridge: token not listed"):
        b.home.lock(other, ENT, REMOTE_CHAIN, attacker, sender=attacker)
    # Qubit: a "token" with no code would make every transferFrom succeed for free.
    data = b.home.list_token.encode_input(attacker, other, True)
    b.council.vote(b.home, data, sender=b.voters[0])
    with ape.reverts("bridge: token has no code"):
        b.council.vote(b.home, data, sender=b.voters[1])
    # A wrapped token must be minted by this bridge.
    data = b.remote.list_token.encode_input(other, attacker, False)
    b.council.vote(b.remote, data, sender=b.voters[0])
    with ape.reverts():
        b.council.vote(b.remote, data, sender=b.voters[1])
    with ape.reverts("bridge: not a wrapped token"):
        b.home.burn(b.token, ENT, REMOTE_CHAIN, alice, sender=alice)
    with ape.reverts("bridge: not a home token"):
        b.remote.lock(b.wrapped, ENT, chain.chain_id, alice, sender=alice)


def test_delisted_token_stops_new_transfers_but_not_settlement(b, alice, submitter):
    pending = b.lock(alice, ENT)
    b.governed(b.home, "delist_token", b.token)
    b.token.approve(b.home, ENT, sender=alice)
    with ape.reverts("bridge: token not listed"):
        b.home.lock(b.token, ENT, REMOTE_CHAIN, alice, sender=alice)
    b.deliver(pending, submitter)  # minted remotely, then marked here though delisted
    b.governed(b.remote, "delist_token", b.wrapped)
    with ape.reverts("bridge: token not listed"):
        b.remote.burn(b.wrapped, ENT, chain.chain_id, alice, sender=alice)
    b.assert_conserved()


def test_refund_after_cancel(b, alice, bob, submitter):
    transfer = b.lock(alice, 30 * ENT, recipient=bob)
    cancel = b.sigs(b.remote, transfer, ACTION_CANCEL)
    with ape.reverts("bridge: too early to cancel"):
        b.remote.cancel(transfer, cancel, sender=submitter)
    # The recipient may decline at once; anyone may cancel after REFUND_DELAY.
    b.remote.cancel(transfer, cancel, sender=bob)
    with ape.reverts("bridge: already processed"):
        b.remote.unlock(transfer, b.sigs(b.remote, transfer, ACTION_UNLOCK), sender=submitter)
    with ape.reverts("bridge: signer not a relayer"):
        b.home.refund(transfer, b.sigs(b.home, transfer, ACTION_DELIVERED), sender=submitter)
    before = b.token.balanceOf(alice)
    receipt = b.home.refund(transfer, b.sigs(b.home, transfer, ACTION_REFUND), sender=submitter)
    b.in_flight.pop(transfer.id())
    assert b.token.balanceOf(alice) == before + 30 * ENT
    assert receipt.events[-1] == b.home.TransferRefunded(
        id=transfer.id(), token=b.token, sender=alice, nonce=transfer.nonce, amount=30 * ENT
    )
    with ape.reverts("bridge: not pending"):
        b.home.mark_transferred(
            transfer, b.sigs(b.home, transfer, ACTION_DELIVERED), sender=submitter
        )
    b.assert_conserved()

    # A burned transfer nobody releases: cancelled by anyone after the delay, minted back.
    b.deliver(b.lock(alice, 10 * ENT, recipient=bob), submitter)
    back = b.burn(bob, 10 * ENT, recipient=alice)
    chain.pending_timestamp = back.timestamp + b.home.REFUND_DELAY()
    b.home.cancel(back, b.sigs(b.home, back, ACTION_CANCEL), sender=submitter)
    b.remote.refund(back, b.sigs(b.remote, back, ACTION_REFUND), sender=submitter)
    b.in_flight.pop(back.id())
    assert b.wrapped.balanceOf(bob) == 10 * ENT
    b.assert_conserved()


def test_locked_transfers_pages_through_pending(b, alice, submitter):
    transfers = [b.lock(alice, ENT) for _ in range(5)]
    b.deliver(transfers[1], submitter)
    b.deliver(transfers[3], submitter)
    first = transfers[0].nonce
    assert b.home.locked_transfers(b.token, first, 3) == [first, first + 2]
    assert b.home.locked_transfers(b.token, first + 3, 256) == [first + 4]
    assert b.home.locked_transfers(b.token, first + 5, 10) == []
    with ape.reverts("bridge: page too large"):
        b.home.locked_transfers(b.token, 0, 257)
    b.assert_conserved()


def test_wrapped_token_minted_and_burned_only_by_its_bridge(b, alice, attacker, deployer):
    for who in (attacker, deployer, alice):
        with ape.reverts("wrapped: caller is not the bridge"):
            b.wrapped.mint(who, ENT, sender=who)
        with ape.reverts("wrapped: caller is not the bridge"):
            b.wrapped.bridge_burn(alice, 0, sender=who)
    assert b.wrapped.bridge() == b.remote.address


@pytest.fixture(autouse=True)
def _fresh_ledger_of_flights(b):
    # Ape reverts the chain after each test; the in-flight book must start empty with it.
    b.in_flight.clear()


def test_wrapped_supply_leaves_only_through_the_bridge(b):
    # A plain burn would strand home tokens in the home Bridge: no burn, no minter role.
    functions = {abi.name for abi in b.wrapped.contract_type.abi if abi.type == "function"}
    assert functions.isdisjoint({"burn", "burn_from", "set_minter", "transfer_ownership"})
    assert {"mint", "bridge_burn", "transfer", "permit"} <= functions
