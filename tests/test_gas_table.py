"""The gas tooling's pure parts: `ape run gas_report --only SECTION` (scripts/_gas.py) replaces
one section's table of docs/gas.md in place, every other section byte for byte; `ape run
gas_trace` (scripts/gas_trace.py) splits a trace's top frame by kind.

Offline and fast (no chain)."""

from scripts._gas import GasRow, replace_sections, to_markdown
from scripts.gas_trace import intrinsic_gas, split

HEADER = "# Gas per operation\n\nGenerated."


ROWS = [
    GasRow("Tokens", "transfer", 34_493, 35_000),
    GasRow("Energy auction", "bid", 58_714, 50_000, "floor"),
    GasRow("Balancing market", "commit", 66_082, 70_000),
]


def test_a_section_is_replaced_in_place_and_the_others_kept():
    doc = to_markdown(ROWS, HEADER)
    out = replace_sections(doc, [GasRow("Energy auction", "bid", 57_000, 50_000, "new note")])
    assert out == doc.replace(
        "| bid | 58,714 | ≤ 50,000 | MISSED by 8,714 | floor |",
        "| bid | 57,000 | ≤ 50,000 | MISSED by 7,000 | new note |",
    )
    assert out != doc


def test_a_new_section_is_appended_and_no_rows_change_nothing():
    doc = to_markdown(ROWS, HEADER)
    assert replace_sections(doc, []) == doc
    hive = GasRow("Hive market", "submit", 7_243, 6_000)
    assert replace_sections(doc, [hive]) == to_markdown([*ROWS, hive], HEADER)


def test_gas_trace_splits_the_top_frame_and_counts_a_call_with_its_callee():
    steps = [
        {"depth": 1, "op": "SLOAD", "gas": 10_000, "gasCost": 2_100},
        {"depth": 1, "op": "SSTORE", "gas": 7_900, "gasCost": 2_900},
        {"depth": 1, "op": "CALL", "gas": 5_000, "gasCost": 4_000},
        {"depth": 2, "op": "SSTORE", "gas": 3_000, "gasCost": 2_900},
        {"depth": 1, "op": "LOG1", "gas": 2_000, "gasCost": 750},
        {"depth": 1, "op": "TSTORE", "gas": 1_250, "gasCost": 100},
        {"depth": 1, "op": "STOP", "gas": 1_150, "gasCost": 0},
    ]
    assert split(steps) == [
        ("call 1 (CALL, incl. callee)", 3_000),
        ("events (LOG)", 750),
        ("other execution", 0),
        ("storage reads (SLOAD)", 2_100),
        ("storage writes (SSTORE)", 2_900),
        ("transient storage (lock)", 100),
    ]
    assert intrinsic_gas(bytes([0, 0, 1, 255])) == 21_000 + 2 * 4 + 2 * 16
