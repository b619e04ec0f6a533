"""The demo's bridge part (`scripts/_bridge_demo.py`, the end of `make demo`), run as the
demo runs it: A is the test network's Anvil with the protocol deployed, B the part's own
Anvil, three `oracle relay` processes (2-of-3). The tables it prints are checked against
the chains while B still runs: each printed cell equals the value read here through a
connection of the test's own (the holder's balances on both sides, A's locked balance, B's
wrapped supply, the amount in flight) and the amounts the part moves (60 ENT and 80 eEuro
to B, 25 wENT and 30 wEEUR back), with "locked == supply + in flight" on every row.

`run_bridge_demo` is called directly (the full `make demo` takes minutes); `fund` is the
demo's own way to give the holder ENT (energy stored by a storage unit) and eEuro (the
banker).
"""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from web3 import Web3

from scripts import _bridge_demo
from scripts._bridge_deploy import BRIDGED_TOKENS
from scripts._protocol import deploy_protocol, governed

ERC20 = [
    {
        "name": name,
        "type": "function",
        "stateMutability": "view",
        "inputs": inputs,
        "outputs": [{"name": "", "type": "uint256"}],
    }
    for name, inputs in (
        ("balanceOf", [{"name": "a", "type": "address"}]),
        ("totalSupply", []),
    )
]
COLUMNS = ("holder_a", "locked_a", "holder_b", "supply_b", "in_flight")
ONE = {t.name: 10**t.decimals for t in BRIDGED_TOKENS}
# (title prefix, {token: expected cells in tokens; None: the relayers may be acting}). The
# holder's cell on A is relative to the "Before" table (ENT is funded as stored energy, a
# little over 100 by the rounding up of the Wh).
EXPECTED = {
    "Before": {"ENT": (0, 0, 0, 0, 0), "eEuro": (0, 0, 0, 0, 0)},
    # Locked: A's side is final; B may or may not have minted yet.
    "Locked on A": {"ENT": (-60, 60, None, None, None), "eEuro": (-80, 80, None, None, None)},
    "Unlocked": {"ENT": (-60, 60, 60, 60, 0), "eEuro": (-80, 80, 80, 80, 0)},
    # Burned: B's side is final; A may or may not have released yet.
    "Burned on B": {"ENT": (None, None, 35, 35, None), "eEuro": (None, None, 50, 50, None)},
    "Released": {"ENT": (-35, 35, 35, 35, 0), "eEuro": (-50, 50, 50, 50, 0)},
}


@pytest.fixture(scope="module")
def protocol(deployer, treasury):
    return deploy_protocol(deployer, treasury=treasury.address)


def _rows(text: str) -> dict[str, list[str]]:
    """The printed table's cells by token name."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        for token in BRIDGED_TOKENS:
            if cells and cells[0].startswith(f"{token.name} ("):
                rows[token.name] = cells[1:]
    return rows


def test_the_demos_bridge_part_prints_what_the_chains_hold(
    protocol, deployer, banker, accounts, tmp_path, monkeypatch
):
    t = accounts
    holder, unit, owner = t[34], t[7], t[9]
    ledger, eeuro = protocol.EnergyLedger, protocol.EEuro
    governed(protocol, [deployer], eeuro, "set_banker", banker)
    governed(protocol, [deployer], ledger, "register_storage_unit", unit, owner)

    def fund(account, base_amount, quote_amount):
        # As scripts/demo.py: ENT as energy stored for the member, net of the storage fee.
        fee = ledger.params().storage_fee
        wh = -(-base_amount * 10**18 // (10**18 - fee)) // 10**15 + 1
        ledger.energy_produced(account, wh, ledger.last_seq(unit) + 1, sender=unit)
        eeuro.mint(account, quote_amount, sender=banker)

    console = Console(record=True, width=250)
    original = _bridge_demo.Book.print
    checked: list[str] = []
    start: dict[str, int] = {}

    def checked_print(book, console_, chain_a, title):
        console_.export_text(clear=True)
        ok = original(book, console_, chain_a, title)
        printed = _rows(console_.export_text(clear=False))
        w3b = Web3(Web3.HTTPProvider(book.w3b.provider.endpoint_uri))
        [step] = [k for k in EXPECTED if title.startswith(k)]
        for token in BRIDGED_TOKENS:
            cells = printed[token.name]
            assert cells[-1] == "True", (title, cells)
            home = getattr(protocol, token.contract)
            address_b = book.files[_bridge_demo.CHAIN_B]["contracts"][token.wrapped]["address"]
            wrapped = w3b.eth.contract(address=address_b, abi=ERC20)
            decimals = token.decimals
            amounts = [_parse(c, decimals) for c in cells[:5]]
            locked, supply, flight = amounts[1], amounts[3], amounts[4]
            assert locked == supply + flight, (title, token.name, amounts)
            if step == "Before":
                start[token.name] = amounts[0]
                assert amounts[0] >= {"ENT": 100, "eEuro": 200}[token.name] * ONE[token.name]
            for i, want in enumerate(EXPECTED[step][token.name]):
                if want is not None:
                    base = start[token.name] if i == 0 else 0
                    got = amounts[i] - base
                    assert got == want * ONE[token.name], (title, token.name, COLUMNS[i], got)
            if step in ("Before", "Unlocked", "Released"):
                # Nothing moves at these steps: the chains read now equal the table.
                on_chain = (
                    home.balanceOf(holder),
                    home.balanceOf(protocol.Bridge),
                    wrapped.functions.balanceOf(holder.address).call(),
                    wrapped.functions.totalSupply().call(),
                )
                assert tuple(amounts[:4]) == on_chain, (title, token.name, amounts, on_chain)
        checked.append(step)
        return ok

    monkeypatch.setattr(_bridge_demo.Book, "print", checked_print)
    people = {"holder": holder, "relayers": [t[35], t[36], t[37]]}
    assert _bridge_demo.run_bridge_demo(protocol, [deployer], people, fund, tmp_path, console)
    assert checked == list(EXPECTED)
    text = console.export_text()
    assert "held at every step" in text and "BROKEN" not in text
    # Both directions really crossed: A's Bridge keeps what B's wrapped supply shows.
    assert protocol.EnergyLedger.balanceOf(protocol.Bridge) == 35 * ONE["ENT"]
    assert protocol.EEuro.balanceOf(protocol.Bridge) == 50 * ONE["eEuro"]


def _parse(cell: str, decimals: int) -> int:
    whole, _, frac = cell.replace(",", "").partition(".")
    return int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or 0)
