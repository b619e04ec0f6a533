"""`ape run gas_trace SECTION [--match TEXT]`: where the gas of a gas-report section goes.

Measures the section as `ape run gas_report --only SECTION` does (same scenario, same rows), then
replays each row's transaction with `debug_traceTransaction` (Anvil) and splits its
`receipt.gas_used` into: the intrinsic cost (21,000 + calldata), the measured contract's own
storage reads and writes, events, transient storage (the reentrancy lock), each external call
with everything inside it, the rest of its execution, and the refund. The lower bounds in the
notes of docs/gas.md are sums of these parts. Prints only; writes nothing.
"""

import click
from ape import chain
from ape.cli import ConnectedProviderCommand
from rich.console import Console
from rich.table import Table

from scripts._gas_sections import SECTIONS, measure_section

CALLS = ("CALL", "STATICCALL", "DELEGATECALL", "CALLCODE")


def intrinsic_gas(data: bytes) -> int:
    """A plain call's intrinsic gas (no access list): 21,000 + 16 per non-zero calldata byte
    + 4 per zero byte."""
    zeros = data.count(0)
    return 21_000 + 4 * zeros + 16 * (len(data) - zeros)


def split(steps: list[dict]) -> list[tuple[str, int]]:
    """The top frame's gas by kind; an external call counts with all gas spent inside it."""
    parts: dict[str, int] = {}

    def add(kind: str, gas: int):
        parts[kind] = parts.get(kind, 0) + gas

    calls = 0
    for i, step in enumerate(steps):
        if step["depth"] != 1:
            continue
        op = step["op"]
        if op in CALLS:
            # Spent by the call: the gas before it minus the gas at the next top-frame step.
            after = next((s["gas"] for s in steps[i + 1 :] if s["depth"] == 1), None)
            calls += 1
            add(f"call {calls} ({op}, incl. callee)", step["gas"] - after)
        elif op == "SLOAD":
            add("storage reads (SLOAD)", step["gasCost"])
        elif op == "SSTORE":
            add("storage writes (SSTORE)", step["gasCost"])
        elif op.startswith("LOG"):
            add("events (LOG)", step["gasCost"])
        elif op in ("TLOAD", "TSTORE"):
            add("transient storage (lock)", step["gasCost"])
        else:
            add("other execution", step["gasCost"])
    return sorted(parts.items())


def trace_table(operation: str, gas_used: int, txn_hash: str) -> Table:
    trace = chain.provider.make_request(
        "debug_traceTransaction",
        [txn_hash, {"disableStack": True, "disableMemory": True, "disableStorage": True}],
    )
    base = intrinsic_gas(bytes(chain.provider.web3.eth.get_transaction(txn_hash)["input"]))
    parts = split(trace["structLogs"])
    executed = sum(gas for _, gas in parts)
    table = Table(title=f"{operation}: {gas_used:,}", title_justify="left")
    table.add_column("part")
    table.add_column("gas", justify="right")
    table.add_row("intrinsic (21,000 + calldata)", f"{base:,}")
    for kind, gas in parts:
        table.add_row(kind, f"{gas:,}")
    table.add_row("refund", f"-{base + executed - gas_used:,}")
    return table


@click.command(cls=ConnectedProviderCommand, short_help="Split a gas-report section's gas by kind")
@click.argument("section", type=click.Choice(SECTIONS))
@click.option("--match", default="", help="Only the rows whose operation contains this text.")
def cli(network, section, match):
    console = Console()
    for row in measure_section(section):
        if match not in row.operation:
            continue
        if not row.txn_hash:
            console.print(f"{row.operation}: {row.gas:,} (computed from several transactions)")
            continue
        console.print(trace_table(row.operation, row.gas, row.txn_hash))
