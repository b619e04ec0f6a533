"""The energy auction house (SPEC §10, issue 14 part 2): its deployment defaults, its wiring
into the protocol, and the unit conversions the demo, the gas bench and the tests share.

Not an `ape run` entry point (the leading underscore hides it from `ape run`).
"""

from __future__ import annotations

WAD = 10**18
KWH = 10**18  # ENT base units per kWh (1 ENT)
WH = 10**15  # ENT base units per Wh: auction amounts are whole Wh
EUR = 10**6  # eEuro base units per euro

# Deployment defaults, each changed only by a Council vote afterwards (and never for an
# auction already open): a bid must beat the highest by 2%; a bid in the last 5 minutes
# moves the end to 5 minutes after it, at most 1 hour past the end the seller chose.
INCREMENT = 2 * WAD // 100
WINDOW = 300
CAP = 3_600


def escrow_of(amount: int, price: int) -> int:
    """What a bid of `price` (eEuro base units per kWh) on `amount` ENT escrows: rounded up
    (SPEC §0), as the contract computes it."""
    wh = amount // WH
    return -(-wh * price // 1000)


def min_next(price: int, increment: int = INCREMENT) -> int:
    """The lowest price that beats `price` by `increment` (wad), the step rounded up."""
    return price + -(-price * increment // WAD)


def deploy_auction(deploy, ledger, coin, beekeeper, governance):
    """Deploys the house for `coin` (which must be on the Beekeeper's list, unfrozen) with the
    defaults above and `governance` (the Council) as the only account that may change them.
    `deploy(name, *args)` is the protocol's deployer, which records the contract."""
    return deploy(
        "EnergyAuction",
        ledger.address,
        coin.address,
        beekeeper.address,
        governance.address,
        INCREMENT,
        WINDOW,
        CAP,
    )
