"""Shared ledger checks: the conservation invariants every ledger test asserts."""

from tests.conftest import assert_supply_conserved

WH = 10**15  # ENT base units per Wh
KWH = 10**18
WAD = 10**18


def produced(ledger, unit, producer, wh):
    seq = ledger.last_seq(unit) + 1
    return ledger.energy_produced(producer, wh, seq, sender=unit)


def consumed(ledger, unit, consumer, wh):
    seq = ledger.last_seq(unit) + 1
    return ledger.energy_consumed(consumer, wh, seq, sender=unit)


def actual(ledger, unit, wh):
    seq = ledger.last_seq(unit) + 1
    return ledger.report_actual_energy(wh, seq, sender=unit)


def assert_ledger_conserved(ledger, units, sessions=()):
    """ENT supply = sum of balances; escrow held = escrow owed by sessions; network energy =
    sum over active units; D = (supply + escrow) - KWH."""
    supply = assert_supply_conserved(ledger)
    owed = sum(ledger.session(c, u).escrow for c, u in sessions)
    assert ledger.total_escrow() == owed
    book = 0
    for u in units:
        info = ledger.unit_info(u)
        if info.active:
            book += info.available_wh + info.locked_wh
    assert ledger.network_energy_wh() == book
    assert ledger.imbalance() == supply + owed - book * WH
