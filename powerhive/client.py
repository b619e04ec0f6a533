"""Contract handles from `deployments/<chain_id>.json`, and transactions that fail in one line.

`Client.connect(rpc, deployments_dir, chain_id)` reaches the node, checks that it is the chain
asked for (and that the deployment's contracts have code there), reads the deployments file
through `oracle.deployments` (one reader for every tool) and gives web3 contract handles by
name. `send` simulates the call first, so a refusal costs nothing and its reason
("council: not a voter") is the error's message; then it signs locally with the caller's
key (an eth-account `LocalAccount`, e.g. from `oracle.keystore.load_account`), sends and waits.
Proof-of-authority chains (extraData longer than 32 bytes) get web3's
`ExtraDataToPOAMiddleware`, and chains without EIP-1559 get legacy gas prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.logs import DISCARD
from web3.middleware import ExtraDataToPOAMiddleware

from oracle.deployments import Deployment, load_deployment
from powerhive.errors import AmountError, NetworkError, TransactionFailed

# Names that share an address with a more useful record (the Beekeeper's proxy carries the
# Beekeeper's ABI under "Beekeeper"): looked at last when naming an address.
_SECONDARY = ("BeekeeperProxy", "BeekeeperImplementation")
LOG_CHUNK = 50_000  # blocks per eth_getLogs request


def revert_reason(exc: Exception) -> str:
    """The contract's reason out of a web3 revert ("execution reverted: book: bad price")."""
    message = str(exc.args[0] if exc.args else exc)
    if isinstance(exc, ContractCustomError):
        return f"reverted with a custom error {message}"
    reason = message.removeprefix("execution reverted: ").removeprefix("execution reverted")
    return " ".join(reason.split()) or "reverted without a reason"


@dataclass(frozen=True)
class Sent:
    """A mined transaction and its receipt."""

    tx_hash: str
    receipt: Any

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])


class Client:
    """One chain, one deployment, optionally one signing account."""

    def __init__(self, w3: Web3, deployment: Deployment, account: LocalAccount | None = None):
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self._contracts: dict[str, Contract] = {}

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        rpc: str,
        deployments_dir: Path,
        chain_id: int | None = None,
        *,
        timeout: float = 10.0,
    ) -> Client:
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
        return cls.attach(w3, deployments_dir, chain_id, where=rpc)

    @classmethod
    def attach(
        cls, w3: Web3, deployments_dir: Path, chain_id: int | None = None, *, where: str = "node"
    ) -> Client:
        """`connect` over any web3 provider (`where` names it in errors)."""
        try:
            node_chain = int(w3.eth.chain_id)
            # Raw request: web3's block formatter refuses a long extraData before we look.
            latest = w3.provider.make_request("eth_getBlockByNumber", ["latest", False])
        except (requests.RequestException, OSError, Web3Exception, ValueError) as exc:
            raise NetworkError(f"cannot reach the node at {where}: {_short(exc)}") from None
        if chain_id is not None and node_chain != chain_id:
            raise NetworkError(
                f"the node at {where} is chain {node_chain}, not chain {chain_id} (--chain-id)"
            )
        if is_poa_block(latest.get("result") or {}):
            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0, name="poa")
        deployment = load_deployment(Path(deployments_dir), node_chain)
        client = cls(w3, deployment)
        council = deployment.contract("Council").address
        if w3.eth.get_code(to_checksum_address(council)) in (b"", b"\x00"):
            raise NetworkError(
                f"chain {node_chain} has no Council at {council}: the deployments file is "
                "from another chain or an older run of it"
            )
        return client

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    # -- contracts ------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.deployment.contracts

    def contract(self, name: str) -> Contract:
        """The web3 handle of a deployed contract by its deployments-file name."""
        if name not in self._contracts:
            record = self.deployment.contract(name)
            self._contracts[name] = self.w3.eth.contract(
                address=to_checksum_address(record.address), abi=record.abi
            )
        return self._contracts[name]

    def at(self, address: str, abi_of: str) -> Contract:
        """A contract at `address` with the ABI of deployment record `abi_of` (e.g. another
        order book created by the Beekeeper, with the OrderBook ABI)."""
        abi = self.deployment.contract(abi_of).abi
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def name_of(self, address: str) -> str | None:
        """The deployment's name for `address` (None if it is not one of its contracts)."""
        return name_of(self.deployment, address)

    # -- reading --------------------------------------------------------------------------

    def call(self, fn) -> Any:
        try:
            return fn.call()
        except (ContractLogicError, ContractCustomError) as exc:
            raise TransactionFailed(revert_reason(exc)) from None
        except (requests.RequestException, OSError) as exc:
            raise NetworkError(f"the node stopped answering: {_short(exc)}") from None

    def events(
        self,
        contract: str,
        event: str,
        argument_filters: dict | None = None,
        *,
        from_block: int | None = None,
    ) -> list:
        """Every `event` of deployment record `contract` since it was deployed."""
        start = self.deployment.contract(contract).block if from_block is None else from_block
        return self.logs(self.contract(contract), event, start, argument_filters)

    def logs(self, contract: Contract, event: str, start: int, argument_filters=None) -> list:
        """Every `event` of handle `contract` (any address, e.g. another order book) from
        block `start` to the head, in chunks of LOG_CHUNK blocks."""
        handle = getattr(contract.events, event)
        end = self.w3.eth.block_number
        found = []
        while start <= end:
            stop = min(end, start + LOG_CHUNK - 1)
            found += handle.get_logs(
                from_block=start, to_block=stop, argument_filters=argument_filters or {}
            )
            start = stop + 1
        return found

    def blocks_with(self, contract: str, events: list[str], *, from_block: int | None = None):
        """The numbers of the blocks (ascending, each once) holding any of `events` of
        deployment record `contract`: one `eth_getLogs` per chunk for all of them."""
        handle = self.contract(contract)
        topics = [
            "0x" + event_abi_to_log_topic(getattr(handle.events, e).abi).hex() for e in events
        ]
        start = self.deployment.contract(contract).block if from_block is None else from_block
        end = self.w3.eth.block_number
        blocks: set[int] = set()
        while start <= end:
            stop = min(end, start + LOG_CHUNK - 1)
            found = self.w3.eth.get_logs(
                {"address": handle.address, "fromBlock": start, "toBlock": stop, "topics": [topics]}
            )
            blocks.update(int(log["blockNumber"]) for log in found)
            start = stop + 1
        return sorted(blocks)

    # -- sending --------------------------------------------------------------------------

    def sender(self) -> LocalAccount:
        if self.account is None:
            raise TransactionFailed("this command sends a transaction: pass --keystore")
        return self.account

    def simulate(self, fn) -> Any:
        """Run `fn` as the sender would, without sending: its return value, or the
        contract's refusal as `TransactionFailed`."""
        try:
            return fn.call({"from": self.sender().address})
        except (ContractLogicError, ContractCustomError) as exc:
            raise TransactionFailed(revert_reason(exc)) from None

    def send(self, fn, *, timeout: float = 120.0) -> Sent:
        """Simulate, then sign and send `fn` from the account, and wait for its receipt."""
        account = self.sender()
        self.simulate(fn)
        w3 = self.w3
        try:
            params: dict[str, Any] = {
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": self.chain_id,
            }
            if w3.eth.get_block("latest").get("baseFeePerGas") is None:
                params["gasPrice"] = w3.eth.gas_price  # a chain without EIP-1559
            tx = fn.build_transaction(params)
            signed = account.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
        except (ContractLogicError, ContractCustomError) as exc:
            raise TransactionFailed(revert_reason(exc)) from None
        except (requests.RequestException, OSError) as exc:
            raise NetworkError(f"the node stopped answering: {_short(exc)}") from None
        except Web3Exception as exc:
            raise TransactionFailed(f"transaction not sent: {_short(exc)}") from None
        if receipt["status"] != 1:
            raise TransactionFailed(f"transaction {tx_hash.hex()} reverted when mined")
        return Sent(tx_hash="0x" + bytes(tx_hash).hex().removeprefix("0x"), receipt=receipt)

    def decode_events(self, contract: str, event: str, sent: Sent) -> list:
        """The `event`s of deployment record `contract` in a receipt."""
        handle = getattr(self.contract(contract).events, event)
        return list(handle().process_receipt(sent.receipt, errors=DISCARD))


def is_poa_block(block: dict) -> bool:
    """A raw JSON-RPC block of a proof-of-authority chain (clique, IBFT, QBFT): its extraData
    (vanity, validators, seals) is longer than the 32 bytes web3 accepts by default."""
    extra = block.get("extraData") or "0x"
    return len(bytes.fromhex(extra.removeprefix("0x"))) > 32


def name_of(deployment: Deployment, address: str) -> str | None:
    names = names_at(deployment, address)
    return names[0] if names else None


def names_at(deployment: Deployment, address: str) -> list[str]:
    """The deployment's records at `address`, the most useful name first."""
    wanted = str(address).lower()
    names = [n for n, rec in deployment.contracts.items() if rec.address.lower() == wanted]
    return sorted(names, key=lambda n: n in _SECONDARY)


def checksum(address: str, *, what: str = "address") -> str:
    try:
        return to_checksum_address(address)
    except (ValueError, TypeError):
        raise AmountError(f"{what} {address!r}: not an Ethereum address") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
