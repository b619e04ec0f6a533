"""eEuro (SPEC §4): the banker role, minting, locking for redemption, burning and releasing."""

import ape
import pytest

from tests.conftest import EEURO, ZERO, assert_supply_conserved


def assert_escrow_conserved(eeuro, holders):
    """Locked funds are held by the contract: held == sum of what each holder locked."""
    owed = sum(eeuro.locked(h) for h in holders)
    assert eeuro.total_locked() == owed
    assert eeuro.balanceOf(eeuro) == owed


@pytest.fixture
def funded(eeuro_banked, banker, alice, bob):
    eeuro_banked.mint(alice, 100 * EEURO, sender=banker)
    eeuro_banked.mint(bob, 50 * EEURO, sender=banker)
    return eeuro_banked


# --- governance and the banker role ---------------------------------------------------------


def test_deploys_without_banker(eeuro, deployer):
    assert eeuro.banker() == ZERO
    assert eeuro.owner() == deployer
    assert eeuro.totalSupply() == 0


def test_zero_governance_is_rejected(project, deployer):
    with ape.reverts("eeuro: zero governance"):
        deployer.deploy(project.EEuro, ZERO)


def test_governance_sets_banker(eeuro, deployer, banker):
    tx = eeuro.set_banker(banker, sender=deployer)
    assert tx.events == [eeuro.BankerSet(previous_banker=ZERO, new_banker=banker)]
    assert eeuro.banker() == banker


@pytest.mark.parametrize("role", ["banker", "alice", "attacker", "treasury"])
def test_set_banker_by_non_governance_reverts(eeuro, role, request):
    caller = request.getfixturevalue(role)
    with ape.reverts("ownable: caller is not the owner"):
        eeuro.set_banker(caller, sender=caller)
    assert eeuro.banker() == ZERO


def test_banker_cannot_be_the_token(eeuro, deployer):
    with ape.reverts("eeuro: banker is this contract"):
        eeuro.set_banker(eeuro, sender=deployer)


def test_governance_revokes_banker(eeuro_banked, deployer, banker, alice):
    tx = eeuro_banked.set_banker(ZERO, sender=deployer)
    assert tx.events == [eeuro_banked.BankerSet(previous_banker=banker, new_banker=ZERO)]
    with ape.reverts("eeuro: banker not set"):
        eeuro_banked.mint(alice, 1, sender=banker)


def test_governance_hands_over_to_council(eeuro, deployer, council_stand_in, banker):
    tx = eeuro.transfer_ownership(council_stand_in, sender=deployer)
    assert tx.events == [
        eeuro.OwnershipTransferred(previous_owner=deployer, new_owner=council_stand_in)
    ]
    with ape.reverts("ownable: caller is not the owner"):
        eeuro.set_banker(banker, sender=deployer)
    eeuro.set_banker(banker, sender=council_stand_in)
    assert eeuro.banker() == banker


@pytest.mark.parametrize("role", ["banker", "alice", "attacker"])
def test_transfer_ownership_by_others_reverts(eeuro, role, request):
    caller = request.getfixturevalue(role)
    with ape.reverts("ownable: caller is not the owner"):
        eeuro.transfer_ownership(caller, sender=caller)


def test_transfer_ownership_to_zero_reverts(eeuro, deployer):
    with ape.reverts("ownable: new owner is the zero address"):
        eeuro.transfer_ownership(ZERO, sender=deployer)


# --- minting --------------------------------------------------------------------------------


def test_banker_mints(eeuro_banked, banker, alice):
    tx = eeuro_banked.mint(alice, 25 * EEURO, sender=banker)
    assert tx.events == [eeuro_banked.Transfer(sender=ZERO, receiver=alice, value=25 * EEURO)]
    assert eeuro_banked.balanceOf(alice) == 25 * EEURO
    assert assert_supply_conserved(eeuro_banked) == 25 * EEURO


def test_mint_without_banker_reverts(eeuro, deployer, alice):
    for caller in (deployer, alice):
        with ape.reverts("eeuro: banker not set"):
            eeuro.mint(alice, 1, sender=caller)


@pytest.mark.parametrize("role", ["deployer", "alice", "attacker", "treasury"])
def test_mint_by_non_banker_reverts(eeuro_banked, role, request):
    caller = request.getfixturevalue(role)
    with ape.reverts("eeuro: caller is not the banker"):
        eeuro_banked.mint(caller, 1, sender=caller)
    assert eeuro_banked.totalSupply() == 0


def test_mint_bad_input_reverts(eeuro_banked, banker, alice):
    with ape.reverts("eeuro: zero amount"):
        eeuro_banked.mint(alice, 0, sender=banker)
    with ape.reverts("erc20: mint to the zero address"):
        eeuro_banked.mint(ZERO, 1, sender=banker)
    with ape.reverts("eeuro: mint to this contract"):
        eeuro_banked.mint(eeuro_banked, 1, sender=banker)


def test_old_banker_loses_the_role(eeuro_banked, deployer, banker, alice):
    eeuro_banked.set_banker(alice, sender=deployer)
    with ape.reverts("eeuro: caller is not the banker"):
        eeuro_banked.mint(banker, 1, sender=banker)
    eeuro_banked.mint(alice, 1, sender=alice)
    assert_supply_conserved(eeuro_banked)


# --- locking, burning and releasing ----------------------------------------------------------


def test_lock_moves_funds_to_escrow(funded, alice, bob):
    tx = funded.lock(30 * EEURO, sender=alice)
    assert tx.events == [
        funded.Transfer(sender=alice, receiver=funded, value=30 * EEURO),
        funded.FundsLocked(account=alice, amount=30 * EEURO, total_locked=30 * EEURO),
    ]
    funded.lock(5 * EEURO, sender=alice)
    funded.lock(50 * EEURO, sender=bob)
    assert funded.locked(alice) == 35 * EEURO
    assert funded.locked(bob) == 50 * EEURO
    assert funded.balanceOf(alice) == 65 * EEURO
    assert funded.balanceOf(bob) == 0
    assert_escrow_conserved(funded, [alice, bob])
    assert assert_supply_conserved(funded) == 150 * EEURO


def test_lock_bad_input_reverts(funded, alice, attacker):
    with ape.reverts("eeuro: lock exceeds balance"):
        funded.lock(100 * EEURO + 1, sender=alice)
    with ape.reverts("eeuro: lock exceeds balance"):
        funded.lock(1, sender=attacker)
    with ape.reverts("eeuro: zero amount"):
        funded.lock(0, sender=alice)
    assert_escrow_conserved(funded, [alice])


def test_banker_burns_locked(funded, banker, alice):
    funded.lock(40 * EEURO, sender=alice)
    tx = funded.burn(alice, 15 * EEURO, sender=banker)
    assert tx.events == [
        funded.Transfer(sender=funded, receiver=ZERO, value=15 * EEURO),
        funded.LockedBurned(account=alice, banker=banker, amount=15 * EEURO),
    ]
    assert funded.locked(alice) == 25 * EEURO
    assert funded.balanceOf(alice) == 60 * EEURO
    assert assert_supply_conserved(funded) == 135 * EEURO
    assert_escrow_conserved(funded, [alice])


def test_banker_releases_locked(funded, banker, alice):
    funded.lock(40 * EEURO, sender=alice)
    tx = funded.release(alice, 40 * EEURO, sender=banker)
    assert tx.events == [
        funded.Transfer(sender=funded, receiver=alice, value=40 * EEURO),
        funded.LockedReleased(account=alice, banker=banker, amount=40 * EEURO),
    ]
    assert funded.locked(alice) == 0
    assert funded.balanceOf(alice) == 100 * EEURO
    assert assert_supply_conserved(funded) == 150 * EEURO
    assert_escrow_conserved(funded, [alice])


def test_burn_or_release_over_locked_reverts(funded, banker, alice, bob):
    funded.lock(10 * EEURO, sender=alice)
    funded.lock(10 * EEURO, sender=bob)
    # Another holder's locked funds never cover the excess.
    with ape.reverts("eeuro: burn exceeds locked"):
        funded.burn(alice, 10 * EEURO + 1, sender=banker)
    with ape.reverts("eeuro: release exceeds locked"):
        funded.release(alice, 10 * EEURO + 1, sender=banker)
    with ape.reverts("eeuro: burn exceeds locked"):
        funded.burn(banker, 1, sender=banker)
    with ape.reverts("eeuro: zero amount"):
        funded.burn(alice, 0, sender=banker)
    with ape.reverts("eeuro: zero amount"):
        funded.release(alice, 0, sender=banker)
    assert_escrow_conserved(funded, [alice, bob])
    assert_supply_conserved(funded)


@pytest.mark.parametrize("role", ["deployer", "alice", "attacker", "treasury"])
def test_burn_and_release_by_non_banker_revert(funded, alice, role, request):
    caller = request.getfixturevalue(role)
    funded.lock(10 * EEURO, sender=alice)
    with ape.reverts("eeuro: caller is not the banker"):
        funded.burn(alice, 1, sender=caller)
    with ape.reverts("eeuro: caller is not the banker"):
        funded.release(alice, 1, sender=caller)
    assert funded.locked(alice) == 10 * EEURO


def test_burn_and_release_without_banker_revert(funded, deployer, banker, alice):
    funded.lock(10 * EEURO, sender=alice)
    funded.set_banker(ZERO, sender=deployer)
    with ape.reverts("eeuro: banker not set"):
        funded.burn(alice, 1, sender=banker)
    with ape.reverts("eeuro: banker not set"):
        funded.release(alice, 1, sender=alice)
    assert_escrow_conserved(funded, [alice])


def test_not_exported_privileges_are_absent(eeuro):
    for name in ("set_minter", "is_minter", "burn_from", "renounce_ownership"):
        assert not hasattr(eeuro, name), name


def test_transfers_to_the_token_itself_are_refused(funded, alice, bob):
    """eEuro sent to the token would be no holder's lock: stranded, and
    `balanceOf(eEuro) == total_locked` would break (issue 9, finding 9)."""
    funded.lock(10 * EEURO, sender=alice)
    with ape.reverts("eeuro: transfer to this contract"):
        funded.transfer(funded, EEURO, sender=alice)
    funded.approve(bob, 5 * EEURO, sender=alice)
    with ape.reverts("eeuro: transfer to this contract"):
        funded.transferFrom(alice, funded, EEURO, sender=bob)
    tx = funded.transferFrom(alice, bob, EEURO, sender=bob)
    assert tx.events == [
        funded.Approval(owner=alice, spender=bob, value=4 * EEURO),
        funded.Transfer(sender=alice, receiver=bob, value=EEURO),
    ]
    assert funded.balanceOf(funded) == funded.total_locked() == funded.locked(alice)
    assert_supply_conserved(funded)
