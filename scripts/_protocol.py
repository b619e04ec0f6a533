"""Deployment of the whole protocol, shared by `deploy`, `demo` and `gas_report`.

Not an `ape run` entry point (the leading underscore hides it from `ape run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
from ape import chain, project
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.logging import logger

from oracle.deployments import ContractRecord, Deployment, write_deployment
from scripts._auction import deploy_auction
from scripts._balancing import deploy_balancing
from scripts._beekeeper import declare_orderbook, deploy_beekeeper
from scripts._calls import encode_call
from scripts._orderbook import ENT_LOT, ENT_MIN_SIZE, ENT_TICK

DEPLOYMENTS_DIR = Path(__file__).resolve().parent.parent / "deployments"

# `--out-dir` of `ape run deploy` and `ape run deploy_local`.
out_dir_option = click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEPLOYMENTS_DIR,
    show_default=True,
    help="Where deployments/<chain_id>.json is written.",
)


@dataclass
class Protocol:
    """The deployed contracts of one community, in deployment order."""

    deployer: AccountAPI
    deploy_block: int
    contracts: dict[str, ContractInstance] = field(default_factory=dict)

    def __getattr__(self, name: str) -> ContractInstance:
        try:
            return self.__dict__["contracts"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_deployment(self, network: str) -> Deployment:
        records = {}
        for name, instance in self.contracts.items():
            receipt = chain.get_receipt(instance.txn_hash) if instance.txn_hash else None
            abi_items = instance.contract_type.abi
            records[name] = ContractRecord(
                address=instance.address,
                block=receipt.block_number if receipt else self.deploy_block,
                abi=[item.model_dump(mode="json", by_alias=True) for item in abi_items],
            )
        return Deployment(
            chain_id=chain.chain_id,
            network=network,
            deployer=self.deployer.address,
            deploy_block=self.deploy_block,
            evm_version=project.config.get_config("vyper").evm_version or "default",
            contracts=records,
        )


def deploy_protocol(deployer: AccountAPI, *, treasury: str | None = None) -> Protocol:
    """Deploy every contract with the Council as their governance; the deployer is the
    Council's first (and, until it votes others in, only) voter."""
    start_block = chain.blocks.height + 1
    protocol = Protocol(deployer=deployer, deploy_block=start_block)

    def deploy(name: str, *args):
        instance = deployer.deploy(getattr(project, name), *args)
        protocol.contracts[name] = instance
        logger.info(f"{name} deployed at {instance.address}")
        return instance

    council = deploy("Council")
    ledger = deploy("EnergyLedger", council.address)
    eeuro = deploy("EEuro", council.address)
    hvt = deploy("HiveToken", treasury or deployer.address)
    # The Beekeeper behind its ERC-1967 proxy; "Beekeeper" is the proxy's address with the
    # Beekeeper's ABI (what users call), the other two records are for upgrades and audits.
    blueprint = declare_orderbook(deployer)
    keeper = deploy_beekeeper(deployer, council.address, hvt, ledger, book_blueprint=blueprint)
    protocol.contracts["BeekeeperImplementation"] = keeper.implementation
    protocol.contracts["BeekeeperProxy"] = keeper.proxy
    protocol.contracts["Beekeeper"] = keeper.beekeeper
    logger.info(f"Beekeeper (proxy) deployed at {keeper.proxy.address}")
    # eEuro is listed at deployment, and the ENT / eEuro market is the Beekeeper's book for it,
    # created from the blueprint by a Council vote; its rules change only by Council vote.
    beekeeper = keeper.beekeeper
    governed(protocol, [deployer], beekeeper, "add_stablecoin", eeuro.address, "EUR")
    governed(
        protocol,
        [deployer],
        beekeeper,
        "create_book",
        eeuro.address,
        ENT_TICK,
        ENT_LOT,
        ENT_MIN_SIZE,
    )
    book = project.OrderBook.at(beekeeper.book_of(eeuro.address))
    protocol.contracts["OrderBook"] = book
    logger.info(f"OrderBook (ENT/eEuro) deployed at {book.address}")
    # The energy auction house for eEuro (SPEC §10), its parameters governed by the Council.
    deploy_auction(deploy, ledger, eeuro, beekeeper, council)
    # The balancing market for eEuro (SPEC §9): 15-minute slots, its default parameters voted
    # in; the Council seeds it from its treasury by vote when it has eEuro (`seed_from_council`).
    deploy_balancing(
        deploy, lambda *call: governed(protocol, [deployer], *call), council, eeuro, ledger
    )
    # The hive market (SPEC §8) for every hive of the Beekeeper; the Council sets its fee
    # and tariff bounds, each hive's owner opens its own market.
    deploy("HiveMarket", beekeeper.address, council.address)
    return protocol


def pass_vote(council, target, data, voters):
    """Each voter in turn votes YES on `target.call(data)` until the vote executes it;
    returns the passing receipt."""
    for voter in voters:
        receipt = council.vote(target, data, sender=voter)
        if receipt.return_value:
            return receipt
    raise RuntimeError(f"vote did not pass with {len(voters)} voters")


def governed(protocol: Protocol, voters, target, method: str, *args):
    """Pass a governed call `target.method(*args)` through the protocol's Council."""
    return pass_vote(protocol.Council, target, encode_call(target, method, *args), voters)


def save_protocol(protocol: Protocol, network: str, *, force: bool, directory: Path | None = None):
    return write_deployment(
        protocol.to_deployment(network), directory or DEPLOYMENTS_DIR, force=force
    )
