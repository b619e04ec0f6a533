"""A whole flow across contracts: energy stored -> ENT sold on the book for eEuro -> the buyer
consumes it from a session. Money and energy are conserved at every step."""

import pytest

from scripts._protocol import deploy_protocol, governed
from tests.conftest import EEURO, assert_supply_conserved
from tests.ledger_helpers import KWH, assert_ledger_conserved

MAX = 2**256 - 1


@pytest.fixture(scope="module")
def protocol(accounts):
    return deploy_protocol(accounts[0], treasury=accounts[5].address)


def test_produce_trade_consume(protocol, accounts):
    deployer, banker, unit, owner = accounts[0], accounts[1], accounts[8], accounts[10]
    producer, consumer = accounts[11], accounts[12]
    ledger, eeuro, book = protocol.EnergyLedger, protocol.EEuro, protocol.OrderBook
    governed(protocol, [deployer], ledger, "register_storage_unit", unit, owner)
    governed(protocol, [deployer], eeuro, "set_banker", banker)

    # 12.5 kWh stored: 12.5 ENT minted, 2.5 to the unit's owner (F = 0.2), 10 to the producer.
    ledger.energy_produced(producer, 12_500, 1, sender=unit)
    assert ledger.balanceOf(producer) == 10 * KWH
    eeuro.mint(consumer, 5 * EEURO, sender=banker)

    # The producer offers 5 kWh at 0.20 eEuro; the consumer bids 5 kWh at 0.25 and pays 0.20.
    ledger.approve(book, MAX, sender=producer)
    eeuro.approve(book, MAX, sender=consumer)
    book.place(False, 200_000, 5 * KWH, False, 10, sender=producer)
    assert ledger.balanceOf(book) == 5 * KWH
    book.place(True, 250_000, 5 * KWH, False, 10, sender=consumer)
    assert ledger.balanceOf(consumer) == 5 * KWH
    assert eeuro.balanceOf(producer) == 1 * EEURO
    assert eeuro.balanceOf(consumer) == 4 * EEURO  # price improvement never pulled
    assert ledger.balanceOf(book) == 0 and eeuro.balanceOf(book) == 0

    # The consumer escrows the 5 ENT in a session and consumes 5 kWh: the session ends exactly.
    ledger.start_session(unit, 5 * KWH, sender=consumer)
    assert ledger.session(consumer, unit).reserved_wh == 5000
    ledger.energy_consumed(consumer, 5000, 2, sender=unit)
    assert not ledger.session(consumer, unit).open
    assert ledger.balanceOf(consumer) == 0
    assert ledger.network_energy_wh() == 7_500
    assert ledger.imbalance() == 0
    assert ledger.totalSupply() == 7_500 * 10**15
    assert_ledger_conserved(ledger, [unit], [(consumer, unit)])
    assert_supply_conserved(eeuro)
    assert eeuro.totalSupply() == 5 * EEURO
