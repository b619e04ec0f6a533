"""The deployed protocol wires the Beekeeper (SPEC §7): behind its proxy, governed by the
Council, eEuro listed, and the ENT / eEuro order book is the Beekeeper's book for eEuro."""

import ape
import pytest

from scripts._orderbook import ENT_LOT, ENT_MIN_SIZE, ENT_TICK
from scripts._protocol import deploy_protocol, governed


@pytest.fixture(scope="module")
def protocol(deployer, treasury):
    return deploy_protocol(deployer, treasury=treasury.address)


def test_beekeeper_is_wired(protocol):
    bk, council, eeuro = protocol.Beekeeper, protocol.Council, protocol.EEuro
    assert bk.address == protocol.BeekeeperProxy.address
    assert bk.implementation() == protocol.BeekeeperImplementation.address
    assert bk.governance() == council.address
    assert (bk.hvt(), bk.ent()) == (protocol.HiveToken.address, protocol.EnergyLedger.address)
    assert bk.stablecoin_info(eeuro) == (1, 6, "EUR", protocol.OrderBook.address)
    book = protocol.OrderBook
    assert (book.BASE(), book.QUOTE(), book.owner()) == (
        protocol.EnergyLedger.address,
        eeuro.address,
        council.address,
    )
    deployment = protocol.to_deployment("ethereum:local:foundry")
    for name in ("Beekeeper", "BeekeeperProxy", "BeekeeperImplementation", "OrderBook"):
        assert name in deployment.contracts
    names = {item["name"] for item in deployment.contracts["Beekeeper"].abi if "name" in item}
    assert {"create_hive", "propose_upgrade", "meter_info"} <= names


def test_no_book_for_an_unlisted_coin_even_by_council_vote(project, protocol, deployer):
    coin = deployer.deploy(project.MockToken, "USD", 6)
    with ape.reverts("beekeeper: unknown stablecoin"):
        governed(
            protocol,
            [deployer],
            protocol.Beekeeper,
            "create_book",
            coin,
            ENT_TICK,
            ENT_LOT,
            ENT_MIN_SIZE,
        )
    # Only the Council: the deployer alone cannot list or create.
    with ape.reverts("beekeeper: not governance"):
        protocol.Beekeeper.add_stablecoin(coin, "USD", sender=deployer)
