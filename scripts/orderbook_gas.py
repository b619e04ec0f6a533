"""`ape run orderbook_gas`: the order book's gas at book depths 0, 10, 100 and 1,000.

Deploys a fresh book on the connected (local) chain, grows it to each depth and measures every
operation from a snapshot (`scripts/_orderbook.py::measure_orderbook_gas`, ~1,200
transactions). Writes docs/gas-orderbook.md and prints the same table.
"""

from pathlib import Path

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand
from rich.console import Console

from scripts._orderbook import gas_markdown, gas_table, measure_orderbook_gas

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gas-orderbook.md"


@click.command(cls=ConnectedProviderCommand, short_help="Measure the order book's gas by depth")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DOCS,
    show_default=True,
    help="Where the markdown table is written.",
)
def cli(network, out):
    console = Console()
    test_accounts = accounts.test_accounts
    members = [test_accounts[i] for i in range(12)]
    console.rule(f"Order book gas on {network.choice}")
    with console.status("building the book to depth 1,000 and measuring (~2 minutes)"):
        rows = measure_orderbook_gas(members[0], members)
    out.write_text(gas_markdown(rows))
    console.print(gas_table(rows))
    console.print(f"wrote {out}")
