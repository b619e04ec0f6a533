"""The balancing market (SPEC §9), shared by deploy, demo, gas report and tests: deployment
with the Council as its governance and the default parameters voted in, plus the seeding of
the market from the Council's own treasury. Not an `ape run` entry point."""

from __future__ import annotations

from dataclasses import dataclass

EEURO = 10**6
# Deployment parameter: 15-minute slots, aligned to quarter hours of unix time.
SLOT_LENGTH = 900


@dataclass(frozen=True)
class MarketParameters:
    """Governed prices in eEuro base units per kWh (multiples of 1,000 = 1 unit per Wh)."""

    base_price: int = 250_000  # 0.25 eEuro/kWh when balanced
    min_price: int = 50_000  # 0.05
    max_price: int = 600_000  # 0.60
    price_step: int = 1_000  # the price moves 0.001 eEuro/kWh ...
    step_wh: int = 100  # ... every 100 Wh of imbalance: 0.01 eEuro/kWh per kWh
    horizon_slots: int = 7 * 96  # a week of 15-minute slots ahead
    certify_window: int = 86_400  # a day after the slot for the meters to certify

    def args(self) -> tuple[int, ...]:
        return (
            self.base_price,
            self.min_price,
            self.max_price,
            self.price_step,
            self.step_wh,
            self.horizon_slots,
            self.certify_window,
        )


DEFAULT_PARAMETERS = MarketParameters()


def deploy_balancing(
    deploy,
    governed,
    council,
    eeuro,
    ledger,
    *,
    slot_length: int = SLOT_LENGTH,
    parameters: MarketParameters = DEFAULT_PARAMETERS,
):
    """Deploys the market governed by `council` and votes its parameters in. `deploy(name,
    *args)` is the protocol's deployer (which records the contract); `governed(target,
    method, *args)` passes a Council vote and returns its receipt."""
    market = deploy("BalancingMarket", eeuro.address, ledger.address, council.address, slot_length)
    governed(market, "set_parameters", *parameters.args())
    return market


def seed_from_council(governed, eeuro, market, amount: int):
    """The Council funds the seed from its own eEuro: it holds tokens like any account and
    moves them only by passed votes (approve the market, then `fund`)."""
    governed(eeuro, "approve", market.address, amount)
    return governed(market, "fund", amount)
