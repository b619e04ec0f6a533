"""The Beekeeper behind its ERC-1967 proxy (SPEC §7), shared by deploy, demo, gas report and
tests. Not an `ape run` entry point (the leading underscore hides it from `ape run`)."""

from __future__ import annotations

from dataclasses import dataclass

from ape import project
from ape.api import AccountAPI
from ape.contracts import ContractInstance

from scripts._calls import encode_call

HVT = 10**18
# Governed prices at deployment: a hive costs 1,000 HVT and each of its meters 100 HVT.
HIVE_COST = 1_000 * HVT
METER_COST = 100 * HVT


@dataclass
class BeekeeperDeployment:
    implementation: ContractInstance
    proxy: ContractInstance
    beekeeper: ContractInstance  # the proxy, with the Beekeeper's ABI
    book_blueprint: str


def declare_orderbook(deployer: AccountAPI) -> str:
    """The ERC-5202 blueprint of `OrderBook` the Beekeeper deploys books from."""
    return deployer.declare(project.OrderBook).contract_address


def deploy_beekeeper(
    deployer: AccountAPI,
    governance,
    hvt,
    ent,
    *,
    hive_cost: int = HIVE_COST,
    meter_cost: int = METER_COST,
    book_blueprint: str | None = None,
) -> BeekeeperDeployment:
    """Deploys the implementation and the proxy, initialized in the proxy's constructor."""
    blueprint = book_blueprint or declare_orderbook(deployer)
    implementation = deployer.deploy(project.Beekeeper)
    init = encode_call(
        implementation, "initialize", governance, hvt, ent, blueprint, hive_cost, meter_cost
    )
    proxy = deployer.deploy(project.BeekeeperProxy, implementation, init)
    beekeeper = project.Beekeeper.at(proxy.address)
    return BeekeeperDeployment(implementation, proxy, beekeeper, blueprint)
