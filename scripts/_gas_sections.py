"""The gas-report sections that `ape run gas_report --only` and `ape run gas_trace` measure
alone: each deploys its own contracts, so alone it gives the same rows as in the whole report."""

from __future__ import annotations

from ape import accounts

from scripts._auction_gas import measure_auction
from scripts._balancing_gas import measure_balancing
from scripts._gas import GasRow
from scripts._hive_market_gas import measure_hive_market

SECTIONS = ("auction", "balancing", "hive")


def measure_section(name: str) -> list[GasRow]:
    test = accounts.test_accounts
    if name == "auction":
        return measure_auction(test[0], test[1], test[7], [test[i] for i in range(20, 26)])
    if name == "balancing":
        return measure_balancing(test[0], [test[i] for i in range(30, 36)])
    if name == "hive":
        return measure_hive_market(test[0], test[6], test[26], test[27])
    raise ValueError(f"no section {name!r}")
