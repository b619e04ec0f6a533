"""HVT (SPEC §7): fixed supply created once for the treasury, burnable, never minted again."""

import ape

from tests.conftest import HVT, ZERO, assert_supply_conserved


def test_whole_supply_goes_to_treasury(project, deployer, treasury):
    hvt = deployer.deploy(project.HiveToken, treasury)
    receipt = ape.chain.get_receipt(hvt.txn_hash)
    transfers = [e for e in receipt.events if e.event_name == "Transfer"]
    assert transfers == [hvt.Transfer(sender=ZERO, receiver=treasury, value=100_000_000 * HVT)]
    assert hvt.totalSupply() == 100_000_000 * HVT == hvt.INITIAL_SUPPLY()
    assert hvt.balanceOf(treasury) == 100_000_000 * HVT
    assert hvt.balanceOf(deployer) == 0
    assert_supply_conserved(hvt)


def test_zero_treasury_is_rejected(project, deployer):
    with ape.reverts("hvt: zero treasury"):
        deployer.deploy(project.HiveToken, ZERO)


def test_no_minting_and_no_owner(hvt):
    for name in ("mint", "set_minter", "is_minter", "owner", "transfer_ownership"):
        assert not hasattr(hvt, name), name


def test_holder_burns(hvt, treasury, alice):
    hvt.transfer(alice, 10 * HVT, sender=treasury)
    tx = hvt.burn(4 * HVT, sender=alice)
    assert tx.events == [hvt.Transfer(sender=alice, receiver=ZERO, value=4 * HVT)]
    assert hvt.balanceOf(alice) == 6 * HVT
    assert hvt.totalSupply() == 100_000_000 * HVT - 4 * HVT
    assert_supply_conserved(hvt)


def test_burn_over_balance_reverts(hvt, treasury, alice):
    hvt.transfer(alice, 10, sender=treasury)
    with ape.reverts("erc20: burn amount exceeds balance"):
        hvt.burn(11, sender=alice)
    assert_supply_conserved(hvt)


def test_burn_from_spends_allowance(hvt, treasury, alice, bob, attacker):
    hvt.transfer(alice, 10 * HVT, sender=treasury)
    hvt.approve(bob, 3 * HVT, sender=alice)
    tx = hvt.burn_from(alice, 2 * HVT, sender=bob)
    assert tx.events == [
        hvt.Approval(owner=alice, spender=bob, value=1 * HVT),
        hvt.Transfer(sender=alice, receiver=ZERO, value=2 * HVT),
    ]
    with ape.reverts("erc20: insufficient allowance"):
        hvt.burn_from(alice, 2 * HVT, sender=bob)
    with ape.reverts("erc20: insufficient allowance"):
        hvt.burn_from(alice, 1, sender=attacker)
    assert hvt.balanceOf(alice) == 8 * HVT
    assert_supply_conserved(hvt)
