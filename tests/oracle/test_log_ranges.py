"""Every event read of the three services goes through `ChainClient.logs`: ranges of at most
`max_block_range` blocks, halved while the node refuses them. A proxy in front of Anvil plays
a public endpoint that refuses eth_getLogs ranges wider than `limit` blocks, with the messages
geth, Alchemy/Infura and Besu send."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain import ChainClient
from oracle.errors import ChainError
from oracle.queen import QueenClient
from oracle.relayer import BridgeClient, bridge_abi
from tests.oracle.rpc_proxy import RpcProxy

# What each kind of node answers for a range too wide (JSON-RPC error messages).
REFUSALS = {
    "geth": "query returned more than 10000 results",
    "alchemy": "Log response size exceeded. You can make eth_getLogs requests with up to a "
    "2K block range and no limit on the response size",
    "infura": "block range is too large",
    "besu": "Requested range exceeds maximum RPC range limit",
}
TRANSFERS = 24


class RangeLimitProxy(RpcProxy):
    """Forwards JSON-RPC to `upstream`; an eth_getLogs wider than `limit` blocks gets the
    error `message` instead (with HTTP `status`). Records the (from, to) of every eth_getLogs
    it answered."""

    def __init__(self, upstream: str, limit: int, message: str, status: int = 200):
        self.limit, self.message, self.http_status = limit, message, status
        self.answered: list[tuple[int, int]] = []
        self.refused = 0
        super().__init__(upstream)

    def answer(self, call: dict) -> dict:
        if call.get("method") == "eth_getLogs":
            query = call["params"][0]
            first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            if last - first + 1 > self.limit:
                self.refused += 1
                error = {"code": -32005, "message": self.message}
                return {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
            self.answered.append((first, last))
        return self.forward(call)

    def status(self, answers: list[dict]) -> int:
        return self.http_status if any("error" in a for a in answers) else 200


@pytest.fixture(scope="module")
def token(w3, compiled):
    """A token with `TRANSFERS` mints, one a block."""
    abi, bytecode = compiled("MockToken")
    governance = w3.eth.accounts[0]
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.contract(abi=abi, bytecode=bytecode)
        .constructor("EUR", 6)
        .transact({"from": governance})
    )
    contract = w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    for i in range(TRANSFERS):
        contract.functions.mint(governance, i + 1).transact({"from": governance})
    return contract, receipt["blockNumber"]


@pytest.fixture
def proxy(anvil, request):
    kind = getattr(request, "param", "geth")
    # "http-400-infura": Infura's message with an HTTP 400 status, as some gateways send it.
    message = REFUSALS[kind.removeprefix("http-400-")]
    status = 400 if kind.startswith("http-400-") else 200
    proxy = RangeLimitProxy(anvil.url, 5, message, status)
    yield proxy
    proxy.close()


def client(cls, url: str, abi, address: str, **kw):
    return cls(
        rpc_url=url,
        account=None,
        unit=Account.create().address,
        ledger_address=address,
        ledger_abi=abi,
        rpc_retries=0,
        poll_s=0.01,
        **kw,
    )


@pytest.mark.parametrize("proxy", [*sorted(REFUSALS), "http-400-infura"], indirect=True)
def test_a_range_too_wide_is_halved_and_every_log_read_once(proxy, token, w3):
    contract, deployed = token
    c = client(ChainClient, proxy.url, contract.abi, contract.address, max_block_range=64)
    event = c.ledger.events.Transfer  # through the proxy
    logs = c.logs(lambda a, b: event.get_logs(from_block=a, to_block=b), deployed)
    assert [entry["args"]["value"] for entry in logs] == list(range(1, TRANSFERS + 1))
    head = w3.eth.block_number
    # The whole range refused, then its half, ... until a size the node answers, kept.
    size, refused = min(64, head - deployed + 1), 0
    while size > proxy.limit:
        size, refused = size // 2, refused + 1
    assert refused >= 2 and proxy.refused == refused and c.log_range == size
    assert all(last - first + 1 <= size for first, last in proxy.answered)
    spans = sorted(proxy.answered)
    assert spans[0][0] == deployed and spans[-1][1] == head
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:], strict=False))  # no gap
    proxy.answered.clear()
    assert c.logs(lambda a, b: event.get_logs(from_block=a, to_block=b), deployed) == logs
    assert proxy.refused == refused  # the smaller size was kept


def test_every_services_event_read_is_chunked(proxy, token, w3, artifact):
    """The unit service's (its reports, the over-consumption), the queen's (`BatchSettled`)
    and the relayer's (the Bridge's events) reads, over the same refusing node."""
    contract, deployed = token
    head = w3.eth.block_number
    unit = client(ChainClient, proxy.url, artifact[0], contract.address)
    assert unit.reports_since(deployed, head) == {}
    assert unit.over_consumption_since(deployed) == []
    queen_abi = [e for e in artifact[0] if e.get("type") != "event"] + [
        {
            "type": "event",
            "name": "BatchSettled",
            "anonymous": False,
            "inputs": [
                {"name": "hive", "type": "uint256", "indexed": True},
                {"name": "period", "type": "uint256", "indexed": True},
                {"name": "entries", "type": "uint256[]", "indexed": False},
            ],
        }
    ]
    queen = client(QueenClient, proxy.url, queen_abi, contract.address)
    assert queen.batches(1, 0, deployed) == []
    relayer = client(BridgeClient, proxy.url, bridge_abi(), contract.address)
    assert relayer.bridge_logs(deployed, head) == []
    # Each of the three clients found the node's limit by halving (once, then kept).
    assert proxy.refused >= 3 and {unit.log_range, queen.log_range, relayer.log_range} == {
        min(c.log_range for c in (unit, queen, relayer))
    }
    assert unit.log_range <= proxy.limit
    assert proxy.answered and all(b - a + 1 <= proxy.limit for a, b in proxy.answered)
    # Every block from the deployment to the head read by each of the six reads.
    blocks = [b for a, z in proxy.answered for b in range(a, z + 1)]
    assert sorted(set(blocks)) == list(range(deployed, head + 1))
    assert len(blocks) == 6 * (head - deployed + 1)


def test_a_node_that_refuses_a_single_block_is_one_line(anvil, token):
    contract, deployed = token
    proxy = RangeLimitProxy(anvil.url, 0, REFUSALS["infura"])
    try:
        c = client(ChainClient, proxy.url, contract.abi, contract.address, max_block_range=4)
        event = c.ledger.events.Transfer  # through the proxy
        with pytest.raises(ChainError, match="refuses eth_getLogs even for block") as info:
            c.logs(lambda a, b: event.get_logs(from_block=a, to_block=b), deployed)
        assert "\n" not in str(info.value) and "block range is too large" in str(info.value)
    finally:
        proxy.close()
