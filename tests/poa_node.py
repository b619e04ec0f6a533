"""A fake proof-of-authority node as a web3 provider: every block carries 97 bytes of
extraData (32 bytes of vanity + a 65-byte seal, as a clique or QBFT validator writes it),
which web3 refuses without `ExtraDataToPOAMiddleware`; no EIP-1559 base fee (legacy gas
prices, as on a clique chain).

It answers the JSON-RPC calls the chain clients make (`oracle.chain.ChainClient`,
`powerhive.client.Client`), mines each raw transaction it is sent into a new block (after
recovering its signer and checking its chain id and nonce) and serves its receipt and logs.
`calls` answers `eth_call` by selector; `on_send(tx)` returns the logs a transaction emits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rlp
from eth_abi import encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from web3.providers.base import BaseProvider

VANITY = bytes.fromhex("d883010b05846765746888676f312e32302e33856c696e7578") + bytes(7)
EXTRA_DATA = "0x" + (VANITY + bytes(65)).hex()  # 32 + 65 = 97 bytes
assert len(bytes.fromhex(EXTRA_DATA[2:])) == 97
ZERO_HASH = "0x" + "00" * 32
GAS_PRICE = 10**9


def hx(value: int) -> str:
    return hex(int(value))


def event_log(contract, name: str, **values) -> dict[str, Any]:
    """An event of web3 handle `contract` encoded as a log (topics and data) by its ABI."""
    abi = next(i for i in contract.abi if i.get("type") == "event" and i["name"] == name)
    topics = ["0x" + event_abi_to_log_topic(abi).hex()]
    data_types, data_values = [], []
    for arg in abi["inputs"]:
        if arg["indexed"]:
            topics.append("0x" + encode([arg["type"]], [values[arg["name"]]]).hex())
        else:
            data_types.append(arg["type"])
            data_values.append(values[arg["name"]])
    return {
        "address": contract.address,
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
    }


class PoaNode(BaseProvider):
    def __init__(self, chain_id: int = 4242, *, extra_data: str = EXTRA_DATA):
        super().__init__()
        self.chain_id = chain_id
        self.extra_data = extra_data
        self.calls: dict[bytes, bytes] = {}
        self.on_send: Callable[[dict], list[dict]] = lambda tx: []
        self.sent: list[dict] = []
        self.receipts: dict[str, dict] = {}
        self.requests: list[str] = []
        self.blocks: list[dict] = []
        self._mine([])

    # -- the chain ------------------------------------------------------------------------

    def _mine(self, tx_hashes: list[str]) -> dict:
        number = len(self.blocks)
        parent = self.blocks[-1]["hash"] if self.blocks else ZERO_HASH
        block = {
            "number": hx(number),
            "hash": "0x" + keccak(text=f"block {number}").hex(),
            "parentHash": parent,
            "nonce": "0x0000000000000000",
            "mixHash": ZERO_HASH,
            "sha3Uncles": ZERO_HASH,
            "logsBloom": "0x" + "00" * 256,
            "transactionsRoot": ZERO_HASH,
            "stateRoot": ZERO_HASH,
            "receiptsRoot": ZERO_HASH,
            "miner": "0x" + "00" * 20,
            "difficulty": "0x2",  # clique: an in-turn validator's block
            "totalDifficulty": hx(2 * number + 1),
            "extraData": self.extra_data,
            "size": hx(600),
            "gasLimit": hx(30_000_000),
            "gasUsed": hx(50_000 * len(tx_hashes)),
            "timestamp": hx(1_800_000_000 + 5 * number),
            "transactions": list(tx_hashes),
            "uncles": [],
        }
        self.blocks.append(block)
        return block

    def _decode(self, raw: bytes) -> dict:
        sender = Account.recover_transaction(raw)
        if raw[0] >= 0xC0:  # legacy: rlp [nonce, gasPrice, gas, to, value, data, v, r, s]
            nonce, _price, _gas, to, _value, data, v, _r, _s = rlp.decode(raw)
            v = int.from_bytes(v, "big")
            chain_id = (v - 35) // 2 if v >= 35 else None
            kind = 0
        else:
            fields = TypedTransaction.from_bytes(raw).as_dict()
            nonce, to, data = fields["nonce"], fields["to"], fields["data"]
            chain_id, kind = fields["chainId"], raw[0]
        return {
            "from": sender,
            "to": to_checksum_address(to),
            "data": bytes(data),
            "nonce": int.from_bytes(nonce, "big") if isinstance(nonce, bytes) else nonce,
            "chainId": chain_id,
            "type": kind,
        }

    def _send(self, raw_hex: str) -> str:
        raw = bytes.fromhex(raw_hex.removeprefix("0x"))
        tx = self._decode(raw)
        if tx["chainId"] != self.chain_id:
            raise ValueError(f"invalid chain id {tx['chainId']}")
        if tx["nonce"] != self._count(tx["from"]):
            raise ValueError("nonce too low")
        tx_hash = "0x" + keccak(raw).hex()
        logs = self.on_send(tx)
        self.sent.append(tx)
        block = self._mine([tx_hash])
        self.receipts[tx_hash] = {
            "transactionHash": tx_hash,
            "transactionIndex": "0x0",
            "blockHash": block["hash"],
            "blockNumber": block["number"],
            "from": tx["from"],
            "to": tx["to"],
            "cumulativeGasUsed": hx(50_000),
            "gasUsed": hx(50_000),
            "effectiveGasPrice": hx(GAS_PRICE),
            "contractAddress": None,
            "logsBloom": "0x" + "00" * 256,
            "status": "0x1",
            "type": hx(tx["type"]),
            "logs": [
                {
                    **log,
                    "logIndex": hx(i),
                    "transactionIndex": "0x0",
                    "transactionHash": tx_hash,
                    "blockHash": block["hash"],
                    "blockNumber": block["number"],
                    "removed": False,
                }
                for i, log in enumerate(logs)
            ],
        }
        return tx_hash

    def _count(self, address: str) -> int:
        return sum(1 for tx in self.sent if tx["from"].lower() == address.lower())

    def _block(self, tag) -> dict | None:
        if tag in ("latest", "pending", "safe", "finalized"):
            return self.blocks[-1]
        if tag == "earliest":
            return self.blocks[0]
        number = int(tag, 16)
        return self.blocks[number] if number < len(self.blocks) else None

    def _logs(self, query: dict) -> list[dict]:
        first = int(self._block(query.get("fromBlock", "latest"))["number"], 16)
        last = int(self._block(query.get("toBlock", "latest"))["number"], 16)
        wanted = query.get("address")
        wanted = [wanted] if isinstance(wanted, str) else wanted
        found = []
        for receipt in self.receipts.values():
            if not first <= int(receipt["blockNumber"], 16) <= last:
                continue
            for log in receipt["logs"]:
                if wanted and log["address"].lower() not in [a.lower() for a in wanted]:
                    continue
                topics = query.get("topics") or []
                if all(
                    t is None
                    or (
                        i < len(log["topics"])
                        and log["topics"][i] in (t if isinstance(t, list) else [t])
                    )
                    for i, t in enumerate(topics)
                ):
                    found.append(log)
        return found

    # -- JSON-RPC -------------------------------------------------------------------------

    def make_request(self, method: str, params: Any) -> dict:
        self.requests.append(method)
        try:
            result = self._answer(method, list(params or []))
        except ValueError as exc:
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": str(exc)}}
        return {"jsonrpc": "2.0", "id": 1, "result": result}

    def _answer(self, method: str, params: list) -> Any:
        if method == "eth_chainId":
            return hx(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "eth_blockNumber":
            return self.blocks[-1]["number"]
        if method == "eth_getBlockByNumber":
            return self._block(params[0])
        if method == "eth_getBlockByHash":
            return next((b for b in self.blocks if b["hash"] == params[0]), None)
        if method == "eth_gasPrice":
            return hx(GAS_PRICE)
        if method == "eth_getTransactionCount":
            return hx(self._count(params[0]))
        if method == "eth_getBalance":
            return hx(10**18)
        if method == "eth_getCode":
            return "0x6001600101"
        if method == "eth_estimateGas":
            return hx(60_000)
        if method == "eth_call":
            data = bytes.fromhex(params[0].get("data", params[0].get("input", "0x"))[2:])
            return "0x" + self.calls.get(data[:4], bytes(32)).hex()
        if method == "eth_sendRawTransaction":
            return self._send(params[0])
        if method == "eth_getTransactionReceipt":
            return self.receipts.get(params[0])
        if method == "eth_getLogs":
            return self._logs(params[0])
        raise ValueError(f"the method {method} does not exist/is not available")

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True
