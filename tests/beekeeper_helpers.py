"""Shared by the Beekeeper's Ape tests, the gas report and the demo: deployment of the
Beekeeper behind its ERC-1967 proxy, and the burn-and-stake arithmetic (SPEC §7)."""

from __future__ import annotations

HVT = 10**18
HIVE_COST = 1_000 * HVT
METER_COST = 100 * HVT
FULL_WEIGHT_AGE = 180 * 86400
VOTING_PERIOD = 7 * 86400
METER_ACTIVE, METER_INACTIVE = 1, 2
HIVE_ACTIVE, HIVE_FROZEN = 1, 2
COIN_LISTED, COIN_FROZEN = 1, 2
BALLOT_OPEN, BALLOT_PASSED, BALLOT_REJECTED, BALLOT_FAILED = 1, 2, 3, 4


def split_cost(paid: int) -> tuple[int, int]:
    """(burned, staked) of a payment: half staked, the burn rounded up."""
    staked = paid // 2
    return paid - staked, staked
