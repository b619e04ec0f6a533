"""The oracle's chain client on a proof-of-authority chain (issue 15, item 6): blocks whose
extraData is 97 bytes (clique / QBFT vanity + seal), served by a fake node (tests/poa_node.py).
Blocks, a signed report, its receipt (with its event) and the log query all work with the
detected `ExtraDataToPOAMiddleware`; without it the same calls fail, so these tests can."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import ExtraDataLengthError

from oracle.chain import ChainClient
from oracle.outbox import Report
from tests.poa_node import EXTRA_DATA, PoaNode, event_log

LEDGER = "0x" + "1e" * 20
KEY = "0x" + "42" * 32
PRODUCER = "0x" + "ab" * 20


def client_on(node: PoaNode, artifact, *, poa: bool | None = None) -> ChainClient:
    abi = artifact[0]
    unit = Account.from_key(KEY)
    client = ChainClient(
        rpc_url="fake://poa",
        account=unit,
        unit=unit.address,
        ledger_address=LEDGER,
        ledger_abi=abi,
        poa=poa,
        rpc_retries=0,
        tx_timeout_s=5,
        poll_s=0.001,
    )
    client.w3.provider = node
    ledger = client.w3.eth.contract(address=Web3.to_checksum_address(LEDGER), abi=abi)

    def produced(tx):
        # The ledger's event for the report the unit sent (decoded from the calldata).
        fn, args = ledger.decode_function_input(tx["data"])
        assert fn.fn_name == "energy_produced" and tx["from"] == unit.address
        return [
            event_log(
                ledger,
                "EnergyProduced",
                unit=unit.address,
                producer=args["producer"],
                seq=args["seq"],
                wh=args["wh"],
                minted=args["wh"] * 10**15,
            )
        ]

    node.on_send = produced
    return client


def test_the_fake_node_serves_what_plain_web3_refuses():
    node = PoaNode()
    block = node.make_request("eth_getBlockByNumber", ["latest", False])["result"]
    assert block["extraData"] == EXTRA_DATA and len(bytes.fromhex(EXTRA_DATA[2:])) == 97
    with pytest.raises(ExtraDataLengthError):
        Web3(node).eth.get_block("latest")


def test_blocks_reports_receipts_and_logs_on_a_poa_chain(artifact):
    node = PoaNode(chain_id=4242)
    client = client_on(node, artifact)
    assert client.connect() == 4242
    assert "poa" in [name for _, name in client.w3.middleware_onion.middleware]
    block = client.w3.eth.get_block("latest")
    # The middleware moves the long extraData to proofOfAuthorityData, intact.
    assert block["proofOfAuthorityData"] == bytes.fromhex(EXTRA_DATA[2:])
    assert "extraData" not in block and block["number"] == 0

    report = Report(
        id=1, channel="c", kind="produced", account=PRODUCER, wh=1_250, seq=7, status=""
    )
    signed = client.sign([report])
    assert client._fees() == {"gasPrice": 10**9}  # legacy: no base fee on this chain
    client.broadcast(signed)
    mined = client.wait_mined(signed)
    (sent,) = node.sent
    assert sent["to"] == Web3.to_checksum_address(LEDGER) and sent["chainId"] == 4242
    assert sent["type"] == 0 and sent["nonce"] == 0
    assert mined.tx_hash == signed.tx_hash and mined.block_number == 1 and mined.gas_used == 50_000
    assert client.gas_used(signed.tx_hash) == 50_000

    found = client.reports_since(0, client.block_number())
    assert list(found) == [7]
    got = found[7]
    assert (got.kind, got.account, got.wh, got.block_number) == (
        "produced",
        Web3.to_checksum_address(PRODUCER),
        1_250,
        1,
    )
    assert got.tx_hash == signed.tx_hash.lower()
    # The next report takes the next nonce: the client kept count across the PoA block.
    again = client.sign([Report(2, "c", "produced", PRODUCER, 5, 8, "")])
    assert again.nonce == 1


def test_configured_poa_skips_the_probe(artifact):
    node = PoaNode()
    client = client_on(node, artifact, poa=True)
    client.connect()
    assert "poa" in [name for _, name in client.w3.middleware_onion.middleware]
    assert node.requests.count("eth_getBlockByNumber") == 0  # no probe: configured


def test_without_the_middleware_blocks_and_sends_fail(artifact):
    """`poa = false` in the config on a PoA chain: exactly what the middleware prevents."""
    node = PoaNode()
    client = client_on(node, artifact, poa=False)
    client.connect()
    assert "poa" not in [name for _, name in client.w3.middleware_onion.middleware]
    with pytest.raises(ExtraDataLengthError):
        client.w3.eth.get_block("latest")
    report = Report(id=1, channel="c", kind="produced", account=PRODUCER, wh=1, seq=1, status="")
    with pytest.raises(ExtraDataLengthError):
        client.sign([report])  # the fee lookup reads the latest block
    assert node.sent == []


def test_a_short_extradata_chain_gets_no_middleware(artifact):
    node = PoaNode(extra_data="0x" + "00" * 32)  # Anvil / a proof-of-stake chain
    client = client_on(node, artifact)
    client.connect()
    assert "poa" not in [name for _, name in client.w3.middleware_onion.middleware]
