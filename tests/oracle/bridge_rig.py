"""Test rig for the relayer: a bridge pair on two Anvil chains, relayer keys, configs, processes.

`deploy_pair` deploys on each chain a Council (its deployer the single voter: a strict
majority of one passes every vote), a Bridge, and the token: `MockToken` "ENT" at home on
chain A, its `WrappedToken` on chain B minted only by B's Bridge; then, each by a Council
vote, the peers, the token listing, the four rate limits and the relayer set. It writes
`deployments/<chain_id>.json` for both chains (Bridge, Council, token) the way the relayer
reads them. Nothing here depends on `scripts/deploy.py`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from oracle.bridge_codec import INBOUND, OUTBOUND
from oracle.config import to_toml
from oracle.deployments import ContractRecord, Deployment, write_deployment
from tests.oracle.rig import PASSPHRASE, Anvil, OracleProcess, free_port

CHAIN_A = 31337
CHAIN_B = 31338
ENT = 10**18
# Large enough that the tests never meet the limits (the contract's own tests cover them).
CAPACITY = 10**10 * ENT  # < 2**96
RATE = 10 * ENT  # < 2**64
MAX_TRANSFER = 10**9 * ENT
NAMES = ("Council", "Bridge", "MockToken", "WrappedToken")


def artifacts(compiled) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """(abi, deployment bytecode) of the contracts the pair needs (`compiled`: the conftest's
    fixture, Ape's project or the `.build` manifest)."""
    return {name: compiled(name) for name in NAMES}


def _send(w3: Web3, fn, sender: str) -> dict:
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}), timeout=30)
    assert receipt["status"] == 1, fn
    return receipt


def _deploy(w3: Web3, art, name: str, *args) -> tuple[Any, int]:
    abi, bytecode = art[name]
    deployer = w3.eth.accounts[0]
    receipt = _send(w3, w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args), deployer)
    return w3.eth.contract(address=receipt["contractAddress"], abi=abi), receipt["blockNumber"]


@dataclass
class Chain:
    w3: Web3
    chain_id: int
    council: Any
    bridge: Any
    token: Any  # ENT on A (home), wENT on B (wrapped)
    deploy_block: int
    deployments_dir: Path

    @property
    def deployer(self) -> str:
        return self.w3.eth.accounts[0]

    def governed(self, target, method: str, *args) -> None:
        data = target.encode_abi(method, args=list(args))
        _send(self.w3, self.council.functions.vote(target.address, data), self.deployer)


@dataclass
class Pair:
    a: Chain
    b: Chain
    relayers: list[Any]  # eth_account LocalAccounts, sorted by address
    threshold: int
    sent: list[dict] = field(default_factory=list)  # every transfer the test made

    def holder(self, i: int) -> str:
        return self.a.w3.eth.accounts[2 + i]

    def lock(self, holder: str, amount: int, recipient: str | None = None) -> dict:
        a = self.a
        _send(a.w3, a.token.functions.approve(a.bridge.address, amount), holder)
        receipt = _send(
            a.w3,
            a.bridge.functions.lock(a.token.address, amount, CHAIN_B, recipient or holder),
            holder,
        )
        return self._record(a, receipt, amount)

    def burn(self, holder: str, amount: int, recipient: str | None = None) -> dict:
        b = self.b
        receipt = _send(
            b.w3,
            b.bridge.functions.burn(b.token.address, amount, CHAIN_A, recipient or holder),
            holder,
        )
        return self._record(b, receipt, amount)

    def _record(self, chain: Chain, receipt, amount: int) -> dict:
        (log,) = chain.bridge.events.TransferSent().process_receipt(receipt, errors=DISCARD)
        entry = {
            "source": chain.chain_id,
            "id": "0x" + bytes(log.args.id).hex(),
            "nonce": log.args.nonce,
            "amount": amount,
            "recipient": log.args.recipient,
            "block": receipt["blockNumber"],
        }
        self.sent.append(entry)
        return entry

    def unlocked(self, chain: Chain) -> list[dict]:
        """Every TransferUnlocked on `chain`'s canonical history."""
        logs = chain.bridge.events.TransferUnlocked().get_logs(from_block=chain.deploy_block)
        return [
            {"id": "0x" + bytes(e.args.id).hex(), "nonce": e.args.nonce, "amount": e.args.amount}
            for e in logs
        ]

    def _ids(self, chain: Chain, event: str) -> list[str]:
        logs = getattr(chain.bridge.events, event)().get_logs(from_block=chain.deploy_block)
        return ["0x" + bytes(e.args.id).hex() for e in logs]

    def completed(self, chain: Chain) -> set[str]:
        return set(self._ids(chain, "TransferCompleted"))

    def cancelled(self, chain: Chain) -> list[str]:
        """Every TransferCancelled id on `chain` (a list: a repeat would show)."""
        return self._ids(chain, "TransferCancelled")

    def refunded(self, chain: Chain) -> list[str]:
        return self._ids(chain, "TransferRefunded")

    def delivered(self) -> bool:
        """Every transfer the test made is settled: unlocked on its destination and marked
        on its source, or cancelled on its destination and refunded on its source."""
        ids = {c.chain_id: {u["id"] for u in self.unlocked(c)} for c in (self.a, self.b)}
        done = {c.chain_id: self.completed(c) for c in (self.a, self.b)}
        back = {c.chain_id: set(self.refunded(c)) for c in (self.a, self.b)}
        for t in self.sent:
            dest = CHAIN_B if t["source"] == CHAIN_A else CHAIN_A
            if t["id"] in back[t["source"]]:
                continue
            if t["id"] not in ids[dest] or t["id"] not in done[t["source"]]:
                return False
        return True

    def in_flight(self) -> int:
        """Sent, neither unlocked on the destination nor refunded on the source (cancelled
        ones awaiting their refund included), either direction."""
        ids = {c.chain_id: {u["id"] for u in self.unlocked(c)} for c in (self.a, self.b)}
        back = {c.chain_id: set(self.refunded(c)) for c in (self.a, self.b)}
        total = 0
        for t in self.sent:
            dest = CHAIN_B if t["source"] == CHAIN_A else CHAIN_A
            if t["id"] not in ids[dest] and t["id"] not in back[t["source"]]:
                total += t["amount"]
        return total

    def assert_conserved(self) -> None:
        """Home locked = remote wrapped supply + in flight; nothing unlocked twice; every
        unlock is of a transfer really sent, with its amount."""
        locked = self.a.token.functions.balanceOf(self.a.bridge.address).call()
        supply = self.b.token.functions.totalSupply().call()
        assert locked == supply + self.in_flight(), (locked, supply, self.in_flight())
        sent = {t["id"]: t for t in self.sent}
        for chain in (self.a, self.b):
            unlocks = self.unlocked(chain)
            nonces = [u["nonce"] for u in unlocks]
            assert len(nonces) == len(set(nonces)), f"a nonce unlocked twice on {chain.chain_id}"
            for u in unlocks:
                assert u["id"] in sent, f"unlock of a transfer never sent: {u}"
                assert u["amount"] == sent[u["id"]]["amount"]
            # Never both unlocked and cancelled, never cancelled or refunded twice, never a
            # refund without a cancel on the other side.
            cancelled, refunded = self.cancelled(chain), self.refunded(chain)
            assert len(cancelled) == len(set(cancelled)) and len(refunded) == len(set(refunded))
            assert not set(cancelled) & {u["id"] for u in unlocks}
            other = self.b if chain is self.a else self.a
            assert set(refunded) <= set(self.cancelled(other)), "a refund without a cancel"


def deploy_pair(
    w3a: Web3, w3b: Web3, art, relayers: list, threshold: int, root: Path, holders: int = 4
) -> Pair:
    relayers = sorted(relayers, key=lambda acct: int(acct.address, 16))
    chains = []
    for w3, chain_id in ((w3a, CHAIN_A), (w3b, CHAIN_B)):
        council, first_block = _deploy(w3, art, "Council")
        bridge, _ = _deploy(w3, art, "Bridge", council.address, chain_id)
        if chain_id == CHAIN_A:
            token, _ = _deploy(w3, art, "MockToken", "ENT", 18)
        else:
            token, _ = _deploy(
                w3, art, "WrappedToken", "Wrapped ENT", "wENT", 18, "Wrapped ENT", bridge.address
            )
        directory = root / f"deployments-{chain_id}"
        chains.append(Chain(w3, chain_id, council, bridge, token, first_block, directory))
    a, b = chains
    for here, there, home in ((a, b, True), (b, a, False)):
        here.governed(here.bridge, "set_peer", there.chain_id, there.bridge.address)
        here.governed(here.bridge, "list_token", here.token.address, there.token.address, home)
        for direction in (OUTBOUND, INBOUND):
            here.governed(
                here.bridge,
                "set_limit",
                here.token.address,
                direction,
                CAPACITY,
                RATE,
                MAX_TRANSFER,
            )
        here.governed(here.bridge, "set_relayers", [r.address for r in relayers], threshold)
        names = {"Council": here.council, "Bridge": here.bridge, "Token": here.token}
        write_deployment(
            Deployment(
                chain_id=here.chain_id,
                network="ethereum:local:anvil",
                deployer=here.deployer,
                deploy_block=here.deploy_block,
                evm_version="cancun",
                contracts={
                    n: ContractRecord(c.address, here.deploy_block, c.abi) for n, c in names.items()
                },
            ),
            here.deployments_dir,
            force=True,
        )
    for i in range(holders):
        _send(w3a, a.token.functions.mint(w3a.eth.accounts[2 + i], 10**6 * ENT), a.deployer)
    # Gas for the relayers on both chains.
    for w3 in (w3a, w3b):
        for r in relayers:
            w3.eth.wait_for_transaction_receipt(
                w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": r.address, "value": ENT})
            )
    return Pair(a, b, relayers, threshold)


def relayer_keys(n: int, root: Path) -> list[tuple[Any, Path]]:
    """`n` relayer accounts, each in a cheap-to-decrypt keystore (tests only)."""
    out = []
    for _ in range(n):
        account = Account.create()
        path = root / f"relayer-{account.address[2:10]}.json"
        path.write_text(
            json.dumps(Account.encrypt(account.key, PASSPHRASE, kdf="scrypt", iterations=2**4))
        )
        out.append((account, path))
    return out


@dataclass
class RelayerSetup:
    root: Path
    keystore: Path
    chains: list[dict[str, Any]]
    http_port: int = field(default_factory=free_port)
    peers: list[str] = field(default_factory=list)
    service: dict[str, Any] = field(default_factory=dict)
    relayer: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def data(self) -> dict[str, Any]:
        return {
            "service": {
                "state_dir": str(self.state_dir),
                "poll_s": 0.1,
                "http_port": self.http_port,
                "takeover_s": 2.0,
                "retry_max_s": 1.0,
                "log_level": "INFO",
                **self.service,
            },
            "relayer": {
                "keystore": str(self.keystore),
                "passphrase_env": "POWERHIVE_ORACLE_PASSPHRASE",
                "peers": self.peers,
                "peer_timeout_s": 1.0,
                **self.relayer,
            },
            "chains": self.chains,
        }

    def write(self, name: str = "relayer.toml") -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        path.write_text(to_toml(self.data()))
        return path

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
        except (OSError, ValueError):
            return None


def chain_entry(name: str, url: str, chain: Chain, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "rpc_url": url,
        "chain_id": chain.chain_id,
        "deployments_dir": str(chain.deployments_dir),
        "confirmations": 1,
        "rpc_timeout_s": 2.0,
        "rpc_retries": 1,
        "tx_timeout_s": 10.0,
        **extra,
    }


def relayer_setups(pair: Pair, keys, urls: tuple[str, str], root: Path) -> list[RelayerSetup]:
    """One setup per relayer key, each listing the others as peers."""
    setups = []
    for i, (_account, keystore) in enumerate(keys):
        chains = [chain_entry("A", urls[0], pair.a), chain_entry("B", urls[1], pair.b)]
        setups.append(RelayerSetup(root / f"relayer{i}", keystore, chains))
    for s in setups:
        s.peers = [o.url for o in setups if o is not s]
    return setups


class Miner:
    """An empty block every `every` seconds on each chain that answers (a stopped chain is
    skipped until it is back).

    `paused()` holds it off (after its `evm_mine` under way has returned) for an
    `anvil_reorg`: Anvil 1.7 does not serialise the two, and a block mined during the reorg
    leaves the chain with numbers below its head that it has no block for, for good (seen
    as `Block with id ... not found` in the relayer's log); it also moves the head between
    the test reading it and the reorg, so the depth would not be the one computed."""

    def __init__(self, *anvils: Anvil, every: float = 0.1):
        self.anvils, self.every = anvils, every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.wait(self.every):
            with self._lock:
                for anvil in self.anvils:
                    # A timeout long enough that an answer is not left under way while paused.
                    with contextlib.suppress(requests.RequestException):
                        session.post(
                            anvil.url,
                            json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []},
                            timeout=10,
                        )

    @contextlib.contextmanager
    def paused(self):
        with self._lock:
            yield

    def __enter__(self) -> Miner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class RelayerProcess(OracleProcess):
    """`python -m oracle relay` in a subprocess."""

    command = "relay"


def checksum(address: str) -> str:
    return to_checksum_address(address)
