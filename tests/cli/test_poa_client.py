"""The `powerhive` client on a proof-of-authority chain (issue 15, item 6): a fake node
(tests/poa_node.py) whose blocks carry 97 bytes of extraData. `Client.connect` detects it and
adds `ExtraDataToPOAMiddleware`; blocks, a signed vote, its receipt and its events work, and
the same send without the middleware fails (so this test can)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from eth_account import Account
from web3 import Web3

from oracle.deployments import ContractRecord, Deployment, write_deployment
from powerhive.ballots import action_key
from powerhive.cli import main
from powerhive.client import Client
from powerhive.errors import TransactionFailed
from tests.poa_node import EXTRA_DATA, PoaNode, event_log

CHAIN = 4242
COUNCIL = Web3.to_checksum_address("0x" + "c0" * 20)
EEURO = Web3.to_checksum_address("0x" + "ee" * 20)
KEY = "0x" + "17" * 32
PASS = "pass"


@pytest.fixture(scope="module")
def deployments(project, tmp_path_factory):
    root = tmp_path_factory.mktemp("poa")

    def abi(name):
        return [
            i.model_dump(mode="json", by_alias=True)
            for i in getattr(project, name).contract_type.abi
        ]

    deployment = Deployment(
        chain_id=CHAIN,
        network="ethereum:powerhive-poa:node",
        deployer=Account.from_key(KEY).address,
        deploy_block=0,
        evm_version="cancun",
        contracts={
            "Council": ContractRecord(address=COUNCIL, block=0, abi=abi("Council")),
            "EEuro": ContractRecord(address=EEURO, block=0, abi=abi("EEuro")),
        },
    )
    write_deployment(deployment, root / "deployments", force=True)
    return root / "deployments"


def council_node(deployments) -> PoaNode:
    """A node whose Council passes every vote of its single voter (the deployer)."""
    node = PoaNode(chain_id=CHAIN)
    abi = json.loads((deployments / f"{CHAIN}.json").read_text())["contracts"]["Council"]["abi"]
    council = Web3().eth.contract(address=COUNCIL, abi=abi)

    def vote(tx):
        fn, args = council.decode_function_input(tx["data"])
        assert fn.fn_name == "vote" and tx["to"] == COUNCIL
        key = bytes.fromhex(action_key(args["target"], args["data"])[2:])
        return [event_log(council, "BallotPassed", key=key, target=args["target"], yes=1, voters=1)]

    node.on_send = vote
    return node


def test_connect_detects_poa_and_a_vote_is_sent_and_decoded(deployments):
    node = council_node(deployments)
    client = Client.attach(Web3(node), deployments, CHAIN, where="fake")
    assert "poa" in [name for _, name in client.w3.middleware_onion.middleware]
    assert client.w3.eth.get_block("latest")["proofOfAuthorityData"] == bytes.fromhex(
        EXTRA_DATA[2:]
    )
    client.account = Account.from_key(KEY)
    eeuro, council = client.contract("EEuro"), client.contract("Council")
    banker = "0x" + "b0" * 20
    data = bytes.fromhex(
        eeuro.functions.set_banker(Web3.to_checksum_address(banker))._encode_transaction_data()[2:]
    )
    sent = client.send(council.functions.vote(EEURO, data))
    (tx,) = node.sent
    assert (tx["chainId"], tx["type"], tx["nonce"], tx["from"]) == (
        CHAIN,
        0,  # legacy: the PoA block has no base fee
        0,
        client.account.address,
    )
    assert int(sent.receipt["blockNumber"]) == 1 and sent.gas_used == 50_000
    (passed,) = client.decode_events("Council", "BallotPassed", sent)
    assert passed["args"]["target"] == EEURO and passed["args"]["yes"] == 1
    assert "0x" + bytes(passed["args"]["key"]).hex() == action_key(EEURO, data)


def test_without_the_middleware_the_send_fails(deployments):
    node = council_node(deployments)
    from oracle.deployments import load_deployment

    client = Client(Web3(node), load_deployment(deployments, CHAIN), Account.from_key(KEY))
    council = client.contract("Council")
    with pytest.raises(TransactionFailed, match="extraData is 97 bytes"):
        client.send(council.functions.vote(EEURO, b"\x00" * 4))
    assert node.sent == []


def test_the_cli_proposes_on_a_poa_chain(deployments, tmp_path, monkeypatch):
    """`powerhive propose` through the real `Client.connect`, its HTTP provider replaced by
    the fake node."""
    node = council_node(deployments)
    monkeypatch.setattr(Web3, "HTTPProvider", lambda *a, **k: node)
    keystore = tmp_path / "voter.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, PASS, kdf="scrypt", iterations=2**10)))
    banker = Web3.to_checksum_address("0x" + "b1" * 20)
    result = CliRunner(mix_stderr=False).invoke(
        main,
        ["--rpc", "http://poa:8545", "--chain-id", str(CHAIN), "--deployments", str(deployments),
         "--keystore", str(keystore), "propose", "set-banker", banker],
        env={"POWERHIVE_PASSPHRASE": PASS},
    )  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"EEuro.set_banker(new_banker={banker}" in result.stdout
    assert "passed with 1 of 1 voters" in result.stdout
    assert len(node.sent) == 1
