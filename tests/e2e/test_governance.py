"""Governance wiring: the Council owns every admin function of the ledger and eEuro; nobody,
not even a voter or the deployer, can call them except through a passed vote."""

import ape
import pytest

from scripts._orderbook import ENT_LOT, ENT_MIN_SIZE, ENT_TICK, deploy_orderbook
from scripts._protocol import pass_vote
from tests.conftest import EEURO, ZERO
from tests.ledger_helpers import KWH, assert_ledger_conserved

WAD = 10**18


@pytest.fixture(scope="module")
def community(project, accounts):
    deployer, voter2, voter3 = accounts[0], accounts[13], accounts[14]
    council = deployer.deploy(project.Council)
    ledger = deployer.deploy(project.EnergyLedger, council)
    eeuro = deployer.deploy(project.EEuro, council)
    book = deploy_orderbook(deployer, ledger, eeuro, council)
    voters = [deployer, voter2, voter3]

    def governed(target, data, by=None):
        pass_vote(council, target, data, by or voters)

    governed(council, council.add_voter.encode_input(voter2), [deployer])
    governed(council, council.add_voter.encode_input(voter3), [deployer, voter2])
    return dict(
        council=council, ledger=ledger, eeuro=eeuro, book=book, voters=voters, governed=governed
    )


def admin_calls(c, unit, owner, banker):
    """Every admin function of the ledger and eEuro, with valid arguments."""
    ledger, eeuro = c["ledger"], c["eeuro"]
    return [
        (ledger, "register_storage_unit", (unit, owner)),
        (ledger, "set_parameters", (WAD // 2, WAD // 2, WAD // 10, WAD // 5, 3600)),
        (ledger, "transfer_ownership", (owner,)),
        (eeuro, "set_banker", (banker,)),
        (eeuro, "transfer_ownership", (owner,)),
        (c["book"], "set_rules", (2 * ENT_TICK, ENT_LOT, ENT_MIN_SIZE)),
        (c["book"], "transfer_ownership", (owner,)),
    ]


@pytest.mark.parametrize("role", [0, 1, 2, 8, 4])
def test_admin_functions_reject_direct_calls(community, accounts, role):
    # 0 = deployer (first voter), 1/2 = other voters, 8 = a storage unit, 4 = an attacker.
    caller = community["voters"][role] if role < 3 else accounts[role]
    for contract, method, args in admin_calls(community, accounts[8], accounts[10], accounts[1]):
        with ape.reverts("ownable: caller is not the owner"):
            getattr(contract, method)(*args, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        community["ledger"].remove_storage_unit(accounts[8], sender=caller)


def test_votes_drive_every_admin_function(community, accounts):
    ledger, eeuro, council, governed = (
        community["ledger"],
        community["eeuro"],
        community["council"],
        community["governed"],
    )
    unit, owner, banker, producer = accounts[8], accounts[10], accounts[1], accounts[11]
    governed(ledger, ledger.register_storage_unit.encode_input(unit, owner))
    assert ledger.unit_info(unit).active
    governed(ledger, ledger.set_parameters.encode_input(WAD // 2, WAD // 2, WAD // 10, 0, 3600))
    assert ledger.params().storage_fee == 0
    governed(eeuro, eeuro.set_banker.encode_input(banker))
    assert eeuro.banker() == banker
    eeuro.mint(producer, 5 * EEURO, sender=banker)
    ledger.energy_produced(producer, 1000, 1, sender=unit)
    assert ledger.balanceOf(producer) == KWH  # F = 0 after the vote
    book = community["book"]
    governed(book, book.set_rules.encode_input(2 * ENT_TICK, ENT_LOT, ENT_MIN_SIZE))
    assert book.tick_size() == 2 * ENT_TICK
    governed(ledger, ledger.remove_storage_unit.encode_input(unit))
    assert not ledger.unit_info(unit).active
    assert_ledger_conserved(ledger, [unit])
    # A bad parameter makes the passing vote revert, so the ballot stays open.
    bad = ledger.set_parameters.encode_input(WAD, 0, 1, 0, 3600)
    council.vote(ledger, bad, sender=community["voters"][0])
    with ape.reverts("ledger: M out of range"):
        council.vote(ledger, bad, sender=community["voters"][1])
    assert eeuro.owner() == council.address and ledger.owner() == council.address
    assert eeuro.banker() != ZERO
