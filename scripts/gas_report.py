"""`ape run gas_report`: full-transaction gas (`receipt.gas_used`) per public operation.

Writes docs/gas.md and prints the same table. Every row is a real transaction on a fresh
local chain; targets come from the issues and are compared, never loosened.
"""

from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from rich.console import Console
from rich.table import Table

from scripts._beekeeper_gas import measure_beekeeper
from scripts._bridge_gas import measure_bridge
from scripts._calls import encode_call
from scripts._gas import GasRow, replace_sections, row, to_markdown
from scripts._gas_sections import SECTIONS, measure_section
from scripts._protocol import deploy_protocol, governed, pass_vote

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gas.md"
EEURO = 10**6
HVT = 10**18


def measure_tokens(deployer, banker, alice, bob, carol, dave, treasury) -> list[GasRow]:
    protocol = deploy_protocol(deployer, treasury=treasury.address)
    eeuro, hvt = protocol.EEuro, protocol.HiveToken
    s = "Tokens (eEuro, HVT)"
    rows = [
        row(
            s,
            "eEuro set_banker through a Council vote (1 voter)",
            governed(protocol, [deployer], eeuro, "set_banker", banker),
        )
    ]
    rows.append(
        row(
            s,
            "eEuro first mint ever",
            eeuro.mint(alice, 100 * EEURO, sender=banker),
            note="one-time: total supply goes from zero to non-zero (+17,100)",
        )
    )
    rows.append(
        row(s, "eEuro mint to a new holder", eeuro.mint(dave, 100 * EEURO, sender=banker), 55_000)
    )
    rows.append(
        row(
            s,
            "eEuro mint to an existing holder",
            eeuro.mint(alice, 100 * EEURO, sender=banker),
            55_000,
        )
    )
    rows.append(
        row(
            s,
            "eEuro transfer to a new holder",
            eeuro.transfer(bob, 10 * EEURO, sender=alice),
            52_000,
        )
    )
    rows.append(
        row(
            s,
            "eEuro transfer to an existing holder",
            eeuro.transfer(bob, 10 * EEURO, sender=alice),
            35_000,
        )
    )
    rows.append(row(s, "eEuro approve", eeuro.approve(carol, 50 * EEURO, sender=alice)))
    rows.append(
        row(
            s,
            "eEuro transferFrom to an existing holder",
            eeuro.transferFrom(alice, bob, 5 * EEURO, sender=carol),
        )
    )
    rows.append(row(s, "eEuro lock (first)", eeuro.lock(20 * EEURO, sender=alice)))
    rows.append(row(s, "eEuro lock (again)", eeuro.lock(20 * EEURO, sender=alice)))
    rows.append(row(s, "eEuro burn locked", eeuro.burn(alice, 10 * EEURO, sender=banker)))
    rows.append(row(s, "eEuro release locked", eeuro.release(alice, 10 * EEURO, sender=banker)))
    rows.append(
        row(
            s,
            "HVT transfer to a new holder",
            hvt.transfer(alice, 1_000 * HVT, sender=treasury),
            52_000,
        )
    )
    rows.append(
        row(
            s,
            "HVT transfer to an existing holder",
            hvt.transfer(alice, 1_000 * HVT, sender=treasury),
            35_000,
        )
    )
    rows.append(row(s, "HVT burn", hvt.burn(10 * HVT, sender=alice)))
    return rows


def measure_ledger(deployer, accts) -> list[GasRow]:
    """Ledger, sessions and Council, with the Council governing the ledger."""
    s = "Energy ledger (ENT) and sessions"
    sc = "Council"
    owner, producer, consumer, unit, unit2 = accts[0], accts[1], accts[2], accts[3], accts[4]
    council = deployer.deploy(project.Council)
    ledger = deployer.deploy(project.EnergyLedger, council)
    rows: list[GasRow] = []

    # Three voters: deployer + two added by vote.
    extra = accts[5:7]
    voters = [deployer]
    for v in extra:
        pass_vote(council, council, encode_call(council, "add_voter", v), voters)
        voters.append(v)
    data = encode_call(ledger, "register_storage_unit", unit, owner)
    rows.append(
        row(
            sc,
            "vote that opens a ballot (3 voters)",
            council.vote(ledger, data, sender=voters[0]),
            note="a fresh ballot costs new storage: 22,100 per new slot",
        )
    )
    rows.append(
        row(
            sc,
            "vote that passes and registers a storage unit (3 voters)",
            council.vote(ledger, data, sender=voters[1]),
            120_000,
        )
    )
    data2 = encode_call(ledger, "register_storage_unit", unit2, owner)
    council.vote(ledger, data2, sender=voters[0])
    rows.append(
        row(
            sc,
            "vote flip YES->NO (3 voters)",
            council.vote(ledger, data2, sender=voters[0]),
            40_000,
        )
    )
    rows.append(
        row(
            sc,
            "vote flip NO->YES (3 voters)",
            council.vote(ledger, data2, sender=voters[0]),
            40_000,
        )
    )
    pass_vote(council, ledger, data2, voters[1:2])

    # ENT: production, consumption.
    ledger.energy_produced(producer, 1000, 1, sender=unit)  # first mint: supply 0 -> non-zero
    ledger.energy_produced(producer, 1000, 1, sender=unit2)
    rows.append(
        row(
            s,
            "energy_produced (existing holders, R = 0)",
            ledger.energy_produced(producer, 2500, 2, sender=unit),
            60_000,
            note="mint split to producer and owner",
        )
    )
    ledger.transfer(consumer, 10**18, sender=producer)
    rows.append(
        row(
            s,
            "start_session (R = 0)",
            ledger.start_session(unit, 5 * 10**17, sender=consumer),
            80_000,
        )
    )
    rows.append(
        row(
            s,
            "energy_consumed within the session (R = 0)",
            ledger.energy_consumed(consumer, 100, 3, sender=unit),
            42_000,
        )
    )
    rows.append(
        row(
            s,
            "energy_consumed ending the session with refund",
            ledger.energy_consumed(consumer, 450, 4, sender=unit),
            note="over-consumption: D grows, R recomputed",
        )
    )
    rows.append(
        row(
            s,
            "report_actual_energy (loss, R recomputed)",
            ledger.report_actual_energy(2000, 5, sender=unit),
        )
    )
    rows.append(
        row(
            s,
            "energy_produced while R > 0 (recovery)",
            ledger.energy_produced(producer, 100, 6, sender=unit),
        )
    )
    rows.append(
        row(
            s,
            "start_session while R > 0",
            ledger.start_session(unit, 2 * 10**17, sender=consumer),
            80_000,
        )
    )
    rows.append(
        row(
            s,
            "energy_consumed while R > 0",
            ledger.energy_consumed(consumer, 10, 7, sender=unit),
            42_000,
            note="applying a cost reads the burn cap B (a cold slot, 2,100) and runs the "
            "rate math; the common case R = 0 is the row above",
        )
    )
    rows.append(
        row(
            s,
            "close_session by the consumer (ends it; grace starts)",
            ledger.close_session(consumer, unit, sender=consumer),
        )
    )
    chain.pending_timestamp += ledger.session_grace()
    rows.append(
        row(
            s,
            "close_session after the grace (refund)",
            ledger.close_session(consumer, unit, sender=producer),
        )
    )
    # Batch of 64 production readings.
    seq = ledger.last_seq(unit) + 1
    readings = [(0 << 248) | (10 << 160) | int(producer.address, 16) for _ in range(64)]
    receipt = ledger.report_batch(seq, readings, sender=unit)
    rows.append(
        GasRow(
            s,
            "report_batch, 64 readings: per reading",
            -(-receipt.gas_used // 64),
            9_000,
            note=f"{receipt.gas_used:,} for the whole batch",
        )
    )
    return rows


def measure_council_scaling(deployer, accts, sizes=(3, 60)) -> list[GasRow]:
    """Vote gas with 3 and 60 voters: a tally is a popcount over packed masks, so it must not
    grow with the number of voters."""
    sc = "Council"
    rows: list[GasRow] = []
    for size in sizes:
        council = deployer.deploy(project.Council)
        voters = [deployer]
        for new in accts[: size - 1]:
            pass_vote(council, council, encode_call(council, "add_voter", new), voters)
            voters.append(new)
        data = encode_call(council, "set_ballot_lifetime", 86400)
        rows.append(
            row(
                sc,
                f"vote that opens a ballot ({size} voters)",
                council.vote(council, data, sender=voters[0]),
            )
        )
        rows.append(
            row(
                sc,
                f"vote that joins, does not pass ({size} voters)",
                council.vote(council, data, sender=voters[1])
                if size > 3
                else council.vote(council, data, sender=voters[0]),
                40_000,
                note="" if size > 3 else "with 3 voters a second YES passes: this is a flip",
            )
        )
        if size >= 60:
            rows.append(_removal_with_full_list(sc, council, voters, data))
    return rows


def _removal_with_full_list(section, council, voters, opened):
    """The worst case of `remove_voter`: every voter has their two ballots open and the
    voter removed voted on all of them, so the removal rewrites every ballot."""
    leaving = voters[-1]
    for i, voter in enumerate(voters):
        for j in range(1 if voter == voters[0] else 2):  # voters[0] keeps one for the removal
            if voter == voters[0]:
                data = opened
            else:
                data = encode_call(council, "set_ballot_lifetime", 3600 + 2 * i + j)
                council.vote(council, data, sender=voter)
            if voter != leaving:
                council.vote(council, data, sender=leaving)
    count = len(council.open_ballots())
    removal = encode_call(council, "remove_voter", leaving)
    receipt = pass_vote(council, council, removal, voters[:-1])
    return row(
        section,
        f"vote passing remove_voter, {count} open ballots ({len(voters)} voters)",
        receipt,
        note="worst case: the removed voter's votes are cleared from every ballot",
    )


@click.command(cls=ConnectedProviderCommand, short_help="Measure gas into docs/gas.md")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DOCS)
@click.option(
    "--only",
    type=click.Choice(SECTIONS),
    default=None,
    help="Measure one section and replace only it in --out (the others stay as they were).",
)
def cli(network, out, only):
    deployer, banker, alice, bob, carol, dave, treasury = (
        accounts.test_accounts[i] for i in range(7)
    )
    if only is not None:
        rows = measure_section(only)
        out.write_text(replace_sections(out.read_text(), rows))
        _print(rows, out)
        return
    rows = measure_tokens(deployer, banker, alice, bob, carol, dave, treasury)
    rows += measure_ledger(deployer, list(accounts.test_accounts)[7:])
    rows += measure_council_scaling(deployer, [accounts.test_accounts[i] for i in range(20, 80)])
    # Hive owners: 100 distinct accounts (70 test accounts and 30 generated, funded for gas).
    owners = list(accounts.test_accounts)[10:80]
    for _ in range(30):
        owner = accounts.test_accounts.generate_test_account()
        deployer.transfer(owner, 10**19)
        owners.append(owner)
    rows += measure_beekeeper(deployer, treasury, alice, bob, owners)
    rows += measure_bridge(deployer, alice, bob, [accounts.test_accounts[i] for i in range(10, 15)])
    rows += measure_section("auction")
    rows += measure_section("balancing")
    rows += measure_section("hive")

    header = (
        "# Gas per operation\n\n"
        "Generated by `ape run gas_report` (`make gas`): full-transaction gas "
        "(`receipt.gas_used`, including the 21,000 base and calldata) on a local Anvil chain "
        f"(chain {chain.chain_id}, EVM cancun). Do not edit by hand. The order book's gas at "
        "book depths 0, 10, 100 and 1,000 is in [gas-orderbook.md](gas-orderbook.md) "
        "(`ape run orderbook_gas`)."
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(rows, header))
    _print(rows, out)


def _print(rows: list[GasRow], out: Path):
    table = Table(title="Gas per operation")
    for col in ("operation", "gas used", "target", "status"):
        table.add_column(col, justify="right" if col in ("gas used", "target") else "left")
    for r in rows:
        table.add_row(r.operation, f"{r.gas:,}", f"≤ {r.target:,}" if r.target else "—", r.status)
    Console().print(table)
    missed = [r for r in rows if r.target is not None and r.gas > r.target]
    Console().print(f"wrote {out}; {len(missed)} target(s) missed")
