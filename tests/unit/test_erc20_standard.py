"""Standard ERC-20 and EIP-2612 behaviour, shared by every fungible token of the protocol."""

import ape
import pytest

from tests.conftest import ZERO, assert_supply_conserved, sign_permit

MAX_UINT = 2**256 - 1


@pytest.fixture(scope="module", params=["eeuro", "hvt"])
def token_case(request, eeuro_banked, hvt, banker, treasury, alice):
    """(token, fund) where fund(account, amount) gives `account` tokens the legitimate way."""
    if request.param == "eeuro":

        def fund(account, amount):
            eeuro_banked.mint(account, amount, sender=banker)

        return eeuro_banked, fund

    def fund(account, amount):
        hvt.transfer(account, amount, sender=treasury)

    return hvt, fund


def test_metadata(eeuro, hvt):
    assert (eeuro.name(), eeuro.symbol(), eeuro.decimals()) == ("PowerHive eEuro", "EEUR", 6)
    assert (hvt.name(), hvt.symbol(), hvt.decimals()) == ("Hive Power Token", "HVT", 18)


def test_transfer_moves_balance_and_logs(token_case, alice, bob):
    token, fund = token_case
    fund(alice, 1_000)
    tx = token.transfer(bob, 400, sender=alice)
    assert tx.events == [token.Transfer(sender=alice, receiver=bob, value=400)]
    assert token.balanceOf(alice) == 600
    assert token.balanceOf(bob) == 400
    assert_supply_conserved(token)


def test_transfer_of_whole_balance_and_zero(token_case, alice, bob):
    token, fund = token_case
    fund(alice, 7)
    token.transfer(bob, 0, sender=alice)
    token.transfer(bob, 7, sender=alice)
    assert token.balanceOf(alice) == 0
    assert token.balanceOf(bob) == 7
    assert_supply_conserved(token)


def test_transfer_over_balance_reverts(token_case, alice, bob):
    token, fund = token_case
    fund(alice, 10)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        token.transfer(bob, 11, sender=alice)
    assert token.balanceOf(alice) == 10
    assert_supply_conserved(token)


def test_transfer_to_zero_address_reverts(token_case, alice):
    token, fund = token_case
    fund(alice, 10)
    with ape.reverts("erc20: transfer to the zero address"):
        token.transfer(ZERO, 1, sender=alice)


def test_approve_and_transfer_from(token_case, alice, bob, attacker):
    token, fund = token_case
    fund(alice, 100)
    tx = token.approve(bob, 60, sender=alice)
    assert tx.events == [token.Approval(owner=alice, spender=bob, value=60)]
    tx = token.transferFrom(alice, attacker, 25, sender=bob)
    assert tx.events == [
        token.Approval(owner=alice, spender=bob, value=35),
        token.Transfer(sender=alice, receiver=attacker, value=25),
    ]
    assert token.allowance(alice, bob) == 35
    assert token.balanceOf(attacker) == 25
    with ape.reverts("erc20: insufficient allowance"):
        token.transferFrom(alice, attacker, 36, sender=bob)
    with ape.reverts("erc20: insufficient allowance"):
        token.transferFrom(alice, attacker, 1, sender=attacker)
    assert_supply_conserved(token)


def test_infinite_allowance_is_not_spent(token_case, alice, bob):
    token, fund = token_case
    fund(alice, 100)
    token.approve(bob, MAX_UINT, sender=alice)
    token.transferFrom(alice, bob, 100, sender=bob)
    assert token.allowance(alice, bob) == MAX_UINT
    assert_supply_conserved(token)


def test_approve_zero_address_reverts(token_case, alice):
    token, _ = token_case
    with ape.reverts("erc20: approve to the zero address"):
        token.approve(ZERO, 1, sender=alice)


def test_transfer_from_over_balance_reverts(token_case, alice, bob):
    token, fund = token_case
    fund(alice, 5)
    token.approve(bob, 10, sender=alice)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        token.transferFrom(alice, bob, 6, sender=bob)


def test_permit_sets_allowance_and_bumps_nonce(token_case, alice, bob, chain):
    token, fund = token_case
    fund(alice, 50)
    deadline = chain.pending_timestamp + 3600
    v, r, s = sign_permit(token, alice, bob, 30, deadline)
    tx = token.permit(alice, bob, 30, deadline, v, r, s, sender=bob)
    assert tx.events == [token.Approval(owner=alice, spender=bob, value=30)]
    assert token.allowance(alice, bob) == 30
    assert token.nonces(alice) == 1
    token.transferFrom(alice, bob, 30, sender=bob)
    assert token.balanceOf(bob) == 30
    assert_supply_conserved(token)


def test_permit_replay_is_rejected(token_case, alice, bob, chain):
    token, _ = token_case
    deadline = chain.pending_timestamp + 3600
    v, r, s = sign_permit(token, alice, bob, 30, deadline)
    token.permit(alice, bob, 30, deadline, v, r, s, sender=bob)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, 30, deadline, v, r, s, sender=bob)


def test_permit_expired_deadline_reverts(token_case, alice, bob, chain):
    token, _ = token_case
    deadline = chain.pending_timestamp - 1
    v, r, s = sign_permit(token, alice, bob, 30, deadline)
    with ape.reverts("erc20: expired deadline"):
        token.permit(alice, bob, 30, deadline, v, r, s, sender=bob)


def test_permit_by_wrong_signer_reverts(token_case, alice, bob, attacker, chain):
    token, _ = token_case
    deadline = chain.pending_timestamp + 3600
    v, r, s = sign_permit(token, alice, attacker, 30, deadline, signer=attacker)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, attacker, 30, deadline, v, r, s, sender=attacker)
    assert token.allowance(alice, attacker) == 0


def test_permit_with_tampered_amount_reverts(token_case, alice, bob, chain):
    token, _ = token_case
    deadline = chain.pending_timestamp + 3600
    v, r, s = sign_permit(token, alice, bob, 30, deadline)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, 31, deadline, v, r, s, sender=bob)


def test_domain_separator_matches_eip712_domain(token_case, chain):
    token, _ = token_case
    fields, name, version, chain_id, contract, _salt, _ext = token.eip712Domain()
    assert fields == b"\x0f"
    assert chain_id == chain.chain_id
    assert contract == token.address
    assert version == "1"
    assert name == token.name()
    assert len(token.DOMAIN_SEPARATOR()) == 32
