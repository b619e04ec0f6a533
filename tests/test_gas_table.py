"""`ape run gas_report --only SECTION` (scripts/_gas.py): one section re-measured replaces its
own table in docs/gas.md, in place; every other section stays byte for byte.

Offline and fast (no chain)."""

from scripts._gas import GasRow, replace_sections, to_markdown

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
