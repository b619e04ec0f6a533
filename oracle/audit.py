"""What a unit reported, read back from the chain itself (not from the outbox).

The reporting functions are the ledger's fixed ABI (`IEnergyLedger.vyi`), so the successful
transactions a unit sent to the ledger say exactly what the ledger accepted, whatever events
the ledger emits. Meant for demos and audits on test chains: it walks every block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3

KINDS = {0: "produced", 1: "consumed", 2: "actual"}
_WH_MASK = 2**88 - 1
_ACCOUNT_MASK = 2**160 - 1


@dataclass
class ChainReports:
    """Wh per (kind, account), the last actual energy as ("actual", None), seqs seen."""

    totals: dict[tuple[str, str | None], int] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    transactions: int = 0
    gas_used: int = 0

    def _add(self, kind: str, account: str | None, wh: int, seq: int) -> None:
        if kind == "actual":
            self.totals[("actual", None)] = wh
        else:
            key = (kind, Web3.to_checksum_address(account))
            self.totals[key] = self.totals.get(key, 0) + wh
        self.seqs.append(seq)


def reports_on_chain(w3: Web3, ledger, unit: str, from_block: int = 0) -> ChainReports:
    """Decode every successful report transaction from `unit` to `ledger`."""
    unit = Web3.to_checksum_address(unit)
    found = ChainReports()
    for number in range(from_block, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] != unit or tx.get("to") != ledger.address:
                continue
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            if receipt["status"] != 1:
                continue
            fn, args = ledger.decode_function_input(tx["input"])
            found.transactions += 1
            found.gas_used += receipt["gasUsed"]
            name = fn.fn_name
            if name == "energy_produced":
                found._add("produced", args["producer"], args["wh"], args["seq"])
            elif name == "energy_consumed":
                found._add("consumed", args["consumer"], args["wh"], args["seq"])
            elif name == "report_actual_energy":
                found._add("actual", None, args["wh"], args["seq"])
            elif name == "report_batch":
                for i, word in enumerate(args["readings"]):
                    account = Web3.to_checksum_address(f"0x{word & _ACCOUNT_MASK:040x}")
                    kind = KINDS[word >> 248]
                    found._add(
                        kind,
                        None if kind == "actual" else account,
                        (word >> 160) & _WH_MASK,
                        args["first_seq"] + i,
                    )
    return found
