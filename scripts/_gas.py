"""Helpers for the gas report: one row per measured transaction (full `receipt.gas_used`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GasRow:
    section: str
    operation: str
    gas: int
    target: int | None = None
    note: str = ""
    # The measured transaction (empty for rows computed from several): `ape run gas_trace`.
    txn_hash: str = ""

    @property
    def status(self) -> str:
        if self.target is None:
            return "measured"
        return "met" if self.gas <= self.target else f"MISSED by {self.gas - self.target:,}"


def row(section: str, operation: str, receipt, target: int | None = None, note: str = ""):
    return GasRow(section, operation, int(receipt.gas_used), target, note, str(receipt.txn_hash))


def to_markdown(rows: list[GasRow], header: str) -> str:
    out = [header, ""]
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            out += [
                "",
                f"## {section}",
                "",
                "| operation | gas used | target | status | note |",
                "|---|---:|---:|---|---|",
            ]
        target = f"≤ {r.target:,}" if r.target is not None else "—"
        out.append(f"| {r.operation} | {r.gas:,} | {target} | {r.status} | {r.note} |")
    return "\n".join(out) + "\n"


def replace_sections(markdown: str, rows: list[GasRow]) -> str:
    """`markdown` (a generated docs/gas.md) with the sections of `rows` replaced by them in
    place (or appended when absent), every other section as it was: `gas_report --only`."""
    head, *blocks = markdown.split("\n## ")
    new = to_markdown(rows, "").strip("\n").removeprefix("## ").split("\n## ") if rows else []
    fresh = {b.split("\n", 1)[0]: b for b in new}
    out = []
    for b in blocks:
        name = b.split("\n", 1)[0]
        if name in fresh:
            b = fresh.pop(name)
        out.append(b)
    out += fresh.values()
    return "\n## ".join([head, *(b.rstrip("\n") + "\n" for b in out)])
