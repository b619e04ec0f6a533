"""The balancing market's section of the gas report (issue 14): full-transaction gas
(`receipt.gas_used`) of deposit, commit, cancel, certify, expire and withdraw. Governance is
an account standing in for the Council (its votes are measured in the Council section), the
ledger and eEuro are the real contracts. Every row is a steady-state call unless its name says
otherwise (first commitment in a slot nobody opened: the slot's storage word is created; a
keeper's `open_slots` creates them ahead, so the first commitment in an opened slot costs what
any other does)."""

from __future__ import annotations

from ape import chain, project

from scripts._balancing import DEFAULT_PARAMETERS, EEURO, SLOT_LENGTH
from scripts._gas import GasRow, row

SECTION = "Balancing market"
COMMIT = 70_000
CANCEL = 45_000
CERTIFY = 60_000
BIG = 2**256 - 1


def measure_balancing(governance, people) -> list[GasRow]:
    """`people`: at least six test accounts (banker, unit, two producers, two consumers)."""
    banker, unit, p1, p2, c1, c2 = people[:6]
    ledger = governance.deploy(project.EnergyLedger, governance)
    eeuro = governance.deploy(project.EEuro, governance)
    market = governance.deploy(project.BalancingMarket, eeuro, ledger, governance, SLOT_LENGTH)
    ledger.register_storage_unit(unit, governance, sender=governance)
    eeuro.set_banker(banker, sender=governance)
    market.set_parameters(*DEFAULT_PARAMETERS.args(), sender=governance)
    eeuro.mint(governance, 10_000 * EEURO, sender=banker)
    eeuro.approve(market, BIG, sender=governance)
    rows = [row(SECTION, "fund the seed (first)", market.fund(5_000 * EEURO, sender=governance))]
    for who, roles in ((p1, 1), (p2, 1), (c1, 2), (c2, 2)):
        market.set_member(who, roles, sender=governance)
        eeuro.mint(who, 1_000 * EEURO, sender=banker)
        eeuro.approve(market, BIG, sender=who)
        market.deposit(100 * EEURO, sender=who)
    rows.append(row(SECTION, "deposit (existing balance)", market.deposit(EEURO, sender=c1)))
    slot = market.current_slot() + 2
    rows.append(
        row(
            SECTION,
            "commit, consumer, first commitment in a slot nobody opened",
            market.commit(slot, 1, 2_000, unit, BIG, sender=c1),
            COMMIT,
            note=(
                "unreachable: 21,000 + 1,400 calldata + 22,100 the slot's word created + 22,100"
                " the commitment's word created + 5,000 the consumer's balance word = 71,600;"
                " open_slots creates slot words ahead (the rows below)"
            ),
        )
    )
    opened = market.open_slots(slot + 1, 96, sender=governance)
    rows.append(
        row(
            SECTION,
            "open_slots, 96 slots (a day ahead, by a keeper)",
            opened,
            note=f"{opened.gas_used // 96:,} per slot",
        )
    )
    rows.append(
        row(
            SECTION,
            "commit, consumer, first commitment in an opened slot",
            market.commit(slot + 1, 1, 2_000, unit, BIG, sender=c2),
            COMMIT,
            note="takes the parameter version in force",
        )
    )
    rows.append(
        row(
            SECTION,
            "commit, producer, first commitment in an opened slot",
            market.commit(slot + 2, 0, 2_000, unit, 0, sender=p2),
            COMMIT,
        )
    )
    rows.append(
        row(
            SECTION,
            "commit, consumer, new commitment in a slot with commitments",
            market.commit(slot, 1, 2_000, unit, BIG, sender=c2),
            COMMIT,
        )
    )
    rows.append(
        row(
            SECTION,
            "commit, producer, new commitment in a slot with commitments",
            market.commit(slot, 0, 3_000, unit, 0, sender=p1),
            COMMIT,
            note="reserves the payout from the seed",
        )
    )
    rows.append(
        row(
            SECTION,
            "commit, producer, adding to its commitment",
            market.commit(slot, 0, 500, unit, 0, sender=p1),
            COMMIT,
        )
    )
    market.commit(slot, 0, 1_000, unit, 0, sender=p2)
    rows.append(row(SECTION, "cancel, producer", market.cancel(slot, 0, sender=p2), CANCEL))
    rows.append(row(SECTION, "cancel, consumer", market.cancel(slot, 1, sender=c2), CANCEL))
    chain.pending_timestamp = (slot + 1) * SLOT_LENGTH
    rows.append(
        row(
            SECTION,
            "certify a delivery, producer (partly delivered)",
            market.certify(p1, slot, 0, 3_000, sender=unit),
            CERTIFY,
            note="reads the unit's record from the ledger",
        )
    )
    rows.append(
        row(
            SECTION,
            "certify a delivery, consumer (partly delivered)",
            market.certify(c1, slot, 1, 1_500, sender=unit),
            CERTIFY,
        )
    )
    slot2 = market.current_slot() + 1
    market.commit(slot2, 1, 1_000, unit, BIG, sender=c1)
    chain.pending_timestamp = (slot2 + 1) * SLOT_LENGTH + DEFAULT_PARAMETERS.certify_window
    rows.append(
        row(SECTION, "expire an uncertified commitment", market.expire(c1, slot2, 1, sender=p2))
    )
    rows.append(row(SECTION, "withdraw", market.withdraw(EEURO, sender=c1)))
    return rows
