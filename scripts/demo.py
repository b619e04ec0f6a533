"""`ape run demo`: a small PowerHive community on a local Anvil chain, step by step.

Starts Anvil through Ape's foundry provider (the default local network), deploys the protocol,
sets a banker by governance, mints and locks eEuro, and prints the contracts and balances; then
runs a community (voters, storage units, sessions, a loss and its recovery) and the oracle
service with simulated meters for a compressed day, comparing on-chain energy to the meters;
an energy auction (an outbid, an extension, the settlement); a balancing-market slot filling
with commitments (a price chart in out/), delivery and refunds; two hive owners on the
Beekeeper (hives, meters, a split, a merge, an upgrade vote); a hive market settling three
virtual days of a PV producer, two households and a battery (chart in out/hive.png); last, a
second community on a second Anvil chain and the bridge between them: ENT and eEuro moved
from A to B and back by three `oracle relay` processes (2-of-3), with both sides' balances and
supplies.
"""

from pathlib import Path

import click
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand
from rich.console import Console
from rich.table import Table

from powerhive.units import format_units
from scripts._auction_demo import run_auction_demo
from scripts._balancing_demo import run_balancing_demo
from scripts._beekeeper_demo import run_beekeeper_demo
from scripts._bridge_demo import run_bridge_demo
from scripts._community import run_community
from scripts._hive_demo import run_hive_demo
from scripts._oracle_part import run_oracle_part
from scripts._orderbook import demo_orderbook
from scripts._protocol import deploy_protocol, governed

EEURO = 10**6
HVT = 10**18


def _fmt(amount: int, decimals: int) -> str:
    return format_units(amount, decimals, min_places=2)


@click.command(cls=ConnectedProviderCommand, short_help="Run the community demo")
def cli(network):
    console = Console(width=150)
    deployer, banker, alice, bob, treasury = (accounts.test_accounts[i] for i in range(5))
    console.rule(f"PowerHive demo on {network.choice} (chain {chain.chain_id})")

    protocol = deploy_protocol(deployer, treasury=treasury.address)
    eeuro, hvt = protocol.EEuro, protocol.HiveToken

    governed(protocol, [deployer], eeuro, "set_banker", banker)
    eeuro.mint(alice, 250 * EEURO, sender=banker)
    eeuro.mint(bob, 100 * EEURO, sender=banker)
    eeuro.transfer(bob, 20 * EEURO, sender=alice)
    eeuro.lock(40 * EEURO, sender=alice)
    eeuro.burn(alice, 30 * EEURO, sender=banker)
    eeuro.release(alice, 10 * EEURO, sender=banker)
    eeuro.lock(5 * EEURO, sender=bob)
    hvt.transfer(alice, 1_000 * HVT, sender=treasury)
    hvt.burn(100 * HVT, sender=alice)

    contracts = Table(title="Contracts")
    contracts.add_column("contract")
    contracts.add_column("address")
    contracts.add_column("supply", justify="right")
    contracts.add_row("EEuro", eeuro.address, _fmt(eeuro.totalSupply(), 6))
    contracts.add_row("HiveToken", hvt.address, _fmt(hvt.totalSupply(), 18))
    console.print(contracts)

    balances = Table(
        title="Balances after: mint 250 + 100, transfer 20, lock 40, burn 30, release 10, lock 5"
    )
    for col in ("account", "eEuro", "eEuro locked", "HVT"):
        balances.add_column(col, justify="right" if col != "account" else "left")
    people = [
        ("governance", deployer),
        ("banker", banker),
        ("alice", alice),
        ("bob", bob),
        ("treasury", treasury),
        ("eEuro escrow", eeuro),
    ]
    for label, who in people:
        balances.add_row(
            label,
            _fmt(eeuro.balanceOf(who), 6),
            _fmt(eeuro.locked(who), 6),
            _fmt(hvt.balanceOf(who), 18),
        )
    console.print(balances)
    held, owed = eeuro.balanceOf(eeuro), eeuro.total_locked()
    console.print(f"eEuro escrow held {_fmt(held, 6)} = owed {_fmt(owed, 6)}: {held == owed}")

    t = accounts.test_accounts
    people = {
        "deployer": deployer,
        "voter2": t[5],
        "voter3": t[6],
        "unit_a": t[7],
        "unit_b": t[8],
        "owner": t[9],
        "producer": t[10],
        "consumer": t[11],
    }
    out = Path(__file__).resolve().parent.parent / "out" / "community.csv"
    run_community(protocol, people, out, console)

    # The market: four members trade ENT for eEuro on the order book.
    console.rule("Market: ENT / eEuro order book")
    ledger, unit_a = protocol.EnergyLedger, people["unit_a"]

    def fund(account, base_amount, quote_amount):
        # ENT the legitimate way: energy stored for the member (net of the storage fee F).
        fee = ledger.params().storage_fee
        wh = -(-base_amount * 10**18 // (10**18 - fee)) // 10**15 + 1
        ledger.energy_produced(account, wh, ledger.last_seq(unit_a) + 1, sender=unit_a)
        eeuro.mint(account, quote_amount, sender=banker)

    demo_orderbook(protocol.OrderBook, ledger, eeuro, [t[15], t[16], t[17], t[18]], fund)
    # The energy auction: one lot, an outbid, an extension, the settlement.
    run_auction_demo(protocol, [t[26], t[27], t[28]], fund, console)
    # The balancing market: a slot fills (price after each commitment, a PNG chart under
    # out/), a cancel, delivery certified by a storage unit and the refunds.
    balancing_people = {"banker": banker, "unit": unit_a, "keeper": t[29]}
    balancing_people.update(zip(("p1", "p2", "c1", "c2"), t[30:34], strict=True))
    run_balancing_demo(protocol, [deployer, t[5], t[6]], balancing_people, out.parent, console)

    oracle_people = {
        "unit": t[12],
        "owner": t[9],
        "producer": t[10],
        "funder": t[10],
        "households": {"a": t[13], "b": t[14]},
    }
    voters = [deployer, t[5], t[6]]
    run_oracle_part(protocol, voters, oracle_people, out.parent, console)

    # Last: the Beekeeper moves the chain's clock 180 days ahead (staking age).
    keeper_people = {
        "treasury": treasury,
        "alice": t[19],
        "bob": t[20],
        "meters": [t[i] for i in range(21, 26)],
    }
    run_beekeeper_demo(protocol, voters, keeper_people, console)
    # The hive market: a hive of four workers settles three virtual days.
    hive_people = {
        "treasury": treasury,
        "banker": banker,
        "owner": t[38],
        "queen": t[39],
        "meters": [t[i] for i in range(40, 44)],
    }
    run_hive_demo(protocol, voters, hive_people, console, out.parent)

    # Then a second community on a second local chain, and the bridge between them.
    bridge_people = {"holder": t[34], "relayers": [t[35], t[36], t[37]]}
    if not run_bridge_demo(protocol, voters, bridge_people, fund, out.parent, console):
        raise click.ClickException("the bridge demo failed (see above)")
