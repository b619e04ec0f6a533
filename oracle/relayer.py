"""The bridge relayer (`oracle relay`): watches two chains' Bridges, signs attestations, and
submits `unlock` on the destination and `mark_transferred` (or `refund`) on the source.

One loop, one key, two chains. Each turn:

1. **Scan** each reachable chain from its cursor to `head - confirmations`: first check that
   the cursor's block is still the chain's block at that height (else it is a reorg: rewind
   to the newest kept block that still is, dropping what was seen above it), then read the
   Bridge's events of the range and store them with the new cursor in one transaction.
2. **Act** on what the stored events leave to do (`oracle.relayer_store`): for each transfer
   and action, the relayer whose turn it is (`relayers[id mod N]` of the Bridge where the call
   runs) submits at once, every other one once the work is `takeover_s` old. It signs the
   attestation itself, collects the other M-1 from its peers' `/attestations` endpoints (each
   peer signs only what its own scan confirmed), estimates the call (a revert "already
   processed" / "not pending" means another relayer, or this one before a crash, did it:
   done), then broadcasts and waits for the receipts of the whole batch.

Nothing is kept that could disagree with the chains: after a SIGKILL the relayer rescans at
most the range it was scanning and re-derives its work; a call it made before the crash is
found done by the estimate. The contract refuses a second unlock of a (token, nonce) anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from web3.exceptions import (
    BadFunctionCallOutput,
    BlockNotFound,
    ContractLogicError,
)

from oracle.bridge_codec import (
    ACTION_CANCEL,
    ACTION_DELIVERED,
    ACTION_REFUND,
    ACTION_UNLOCK,
    Transfer,
    digest,
    transfer_from_event,
)
from oracle.chain import ChainClient, _short, revert_reason
from oracle.daemon import close_service, health_endpoint, released_on_failure
from oracle.errors import ChainError, ChainUnavailable, OracleError, StateError
from oracle.lifecycle import CrashPoints, StopRequest
from oracle.metrics import HttpEndpoint
from oracle.relayer_config import BridgeChainConfig, RelayerConfig
from oracle.relayer_store import (
    CANCELLED,
    COMPLETED,
    REFUNDED,
    SENT,
    UNLOCKED,
    Event,
    RelayerStore,
    Work,
)
from oracle.retry import backoff
from oracle.statelock import StateLock
from oracle.wiring import check_served_chain, contract, load_key

log = logging.getLogger("oracle.relayer")

STATE_FILE = "relayer.sqlite"
LOCK_FILE = "relayer.lock"
CRASH_ENV = "POWERHIVE_RELAYER_CRASHPOINT"
ACTION_NAMES = {
    ACTION_UNLOCK: "unlock",
    ACTION_CANCEL: "cancel",
    ACTION_DELIVERED: "mark_transferred",
    ACTION_REFUND: "refund",
}
EVENT_KINDS = {
    "TransferSent": SENT,
    "TransferUnlocked": UNLOCKED,
    "TransferCancelled": CANCELLED,
    "TransferCompleted": COMPLETED,
    "TransferRefunded": REFUNDED,
}
# Reverts meaning the call was already made (by a peer, or by us before a crash).
DONE_REASONS = ("already processed", "not pending")
# Unlock refusals no wait can end (only a Council vote could): a transfer refused for one of
# these and sent more than the Bridge's REFUND_DELAY ago is cancelled on its destination,
# then refunded on its source. Every other refusal (paused, "over limit, wait N s", fewer
# signatures than M, a signer not in the set, a token's own revert) is waited out.
PERMANENT_REASONS = (
    "over per-transfer max",
    "over limit, no refill",
    "token not listed",
    "zero recipient",
    "transfer failed",
)
# How long a mined call is not repeated while its event gets its confirmations.
MINED_HOLD_S = 5.0
# How long an unlock found done is not looked at again when its source shows the transfer
# settled: what a source rescanned from its start after pruning (a reorg deeper than the
# window) brings back without the destination's events, which are not rescanned.
SETTLED_HOLD_S = 600.0
# How long an unlock refused for a permanent reason is not estimated again.
STUCK_HOLD_S = 60.0
# The relayer set is re-read this often (and after a refusal naming a signer).
SET_REFRESH_S = 30.0
BATCH = 200
# A chain still down is logged again this often (and whenever its error changes).
DOWN_LOG_S = 60.0
# Requests per JSON-RPC batch (public nodes often cap batches at 100).
BATCH_RPC = 100
# Settled transfers are pruned from the state at start and then this often.
PRUNE_EVERY_S = 600.0


def bridge_abi() -> list[dict[str, Any]]:
    """The Bridge ABI the relayer speaks (kept equal to the compiled contract by a test)."""
    return json.loads(resources.files("oracle").joinpath("abi/Bridge.json").read_text())


def hexid(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class RelayerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.events = Counter(
            "relayer_events", "Confirmed Bridge events stored", ["chain", "kind"], registry=r
        )
        self.calls = Counter(
            "relayer_calls",
            "Attested calls by outcome (mined, reverted, done_already, refused)",
            ["chain", "action", "outcome"],
            registry=r,
        )
        self.gas = Counter("relayer_gas_used", "Gas of mined calls", ["chain"], registry=r)
        self.cursor = Gauge("relayer_cursor_block", "Last scanned block", ["chain"], registry=r)
        self.head = Gauge("relayer_head_block", "Chain head seen", ["chain"], registry=r)
        self.reorgs = Counter("relayer_reorgs", "Reorgs under the cursor", ["chain"], registry=r)
        self.rewound = Counter(
            "relayer_rewound_events", "Events dropped by rewinds", ["chain"], registry=r
        )
        self.chain_up = Gauge(
            "relayer_chain_up", "1 when the last call to the chain succeeded", ["chain"], registry=r
        )
        self.work = Gauge(
            "relayer_outstanding", "Attested calls still to make", ["chain", "action"], registry=r
        )
        self.served = Counter(
            "relayer_signatures_served", "Attestations handed to peers", ["action"], registry=r
        )
        self.peer_errors = Counter(
            "relayer_peer_errors", "Failed signature requests to peers", ["peer"], registry=r
        )
        self.pruned = Counter(
            "relayer_pruned_transfers", "Settled transfers removed from the state", registry=r
        )
        self.stuck = Gauge(
            "relayer_stuck_transfers",
            "Transfers whose unlock is refused for a permanent reason (cancelled once old enough)",
            ["chain"],
            registry=r,
        )
        self.gap = Gauge(
            "relayer_scan_gap_block",
            "A block the node cannot return at a scan range's end (0: none); scanning backs off",
            ["chain"],
            registry=r,
        )
        self.gaps = Counter(
            "relayer_scan_gaps",
            "Scan ranges not read for a missing end block",
            ["chain"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Signed:
    tx_hash: str
    raw: bytes
    nonce: int


class BridgeClient(ChainClient):
    """The chain client (retries, PoA, fees, nonces) pointed at a Bridge, with `unit` being
    the relayer's address."""

    @property
    def bridge(self):
        return self.ledger

    def block_hash(self, number: int) -> str | None:
        """The canonical hash at `number`, None when the node has no block there: the chain
        is not that long (any more), or a reorg is under way on the node. The caller treats
        None as "not the block scanned" (a rewind, or the range is scanned again), never as
        the chain being down: a chain that stays "down" on one missing block stops relaying.
        """

        def fetch():
            # web3's BlockNotFound is a Web3RPCError, which `rpc` turns into ChainError:
            # caught here, inside the retried call, for what it means.
            try:
                return self.w3.eth.get_block(number)
            except BlockNotFound:
                return None

        block = self.rpc(fetch)
        return None if block is None else block["hash"].to_0x_hex()

    def bridge_logs(self, from_block: int, to_block: int) -> list[dict]:
        topics = [hexid(self.w3.keccak(text=_signature(self.bridge, name))) for name in EVENT_KINDS]
        query = {"address": self.bridge.address, "topics": [topics]}
        return self.logs(
            lambda first, last: self.w3.eth.get_logs(
                {**query, "fromBlock": first, "toBlock": last}
            ),
            from_block,
            to_block,
        )

    def view(self, name: str, *args: Any) -> Any:
        self._ensure_poa()
        try:
            return self.rpc(getattr(self.bridge.functions, name)(*args).call)
        except ContractLogicError as exc:
            reason = revert_reason(exc)
            if reason == "reverted without a reason":
                raise ChainError(
                    f"the contract at {self.bridge.address} on {self.rpc_url} is not a Bridge "
                    f"({name} reverted without a reason): check the config and deployments"
                ) from None
            raise ChainError(f"Bridge {name} reverted: {reason}") from None
        except BadFunctionCallOutput:
            raise ChainError(
                f"no Bridge at {self.bridge.address} on {self.rpc_url} (wrong chain or address?)"
            ) from None

    def batch(self, requests_: list[tuple[str, list]]) -> list[dict]:
        """JSON-RPC batch requests (chunks of `BATCH_RPC`), with the client's retries; each
        answer is the raw response (`result` or `error`), in request order."""
        out: list[dict] = []
        for start in range(0, len(requests_), BATCH_RPC):
            chunk = requests_[start : start + BATCH_RPC]
            answer = self.rpc(self.w3.provider.make_batch_request, chunk)
            if not isinstance(answer, list) or len(answer) != len(chunk):
                error = answer.get("error") if isinstance(answer, dict) else answer
                raise ChainError(f"{self.rpc_url}: batch request refused: {error}")
            out.extend(answer)
        return out

    def latest_timestamp(self) -> int:
        """The timestamp of the chain's newest block."""
        return int(self.rpc(self.w3.eth.get_block, "latest")["timestamp"])

    def sign_data(self, data: str, gas: int, fees: dict[str, int]) -> Signed:
        """Sign a call of the Bridge with the next nonce (not broadcast)."""
        nonce = self.next_nonce()
        tx = {
            "to": self.bridge.address,
            "data": data,
            "value": 0,
            "gas": gas,
            "nonce": nonce,
            "chainId": self.chain_id,
            **fees,
        }
        signed = self.account.sign_transaction(tx)
        self._nonce = nonce + 1
        return Signed(signed.hash.to_0x_hex(), bytes(signed.raw_transaction), nonce)


def rpc_revert_reason(error: dict) -> str:
    """The revert reason of a JSON-RPC error answer (eth_estimateGas / eth_call)."""
    message = str(error.get("message", ""))
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x08c379a0"):
        try:
            from eth_abi import decode

            return decode(["string"], bytes.fromhex(data[10:]))[0]
        except Exception:
            pass
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted") or (
        "reverted without a reason"
    )


def _signature(contract, name: str) -> str:
    abi = next(e for e in contract.abi if e.get("type") == "event" and e["name"] == name)
    return f"{name}({','.join(i['type'] for i in abi['inputs'])})"


@dataclass
class Side:
    """One configured chain, its Bridge and what the relayer knows of it."""

    cfg: BridgeChainConfig
    client: BridgeClient
    start_block: int
    verified: bool = False
    up: bool | None = None
    error: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    # When the outage was last logged (monotonic): again on a new error or once a minute.
    down_logged_at: float = 0.0
    head: int | None = None
    relayers: list[str] = field(default_factory=list)
    threshold: int = 0
    set_read_at: float = -1e9
    events: dict[str, Any] = field(default_factory=dict)
    # Calls per batch and blocks per log request: halved after a timeout (a node too slow
    # for a big request must not stall the relayer on it for ever), doubled after a success.
    batch_limit: int = BATCH
    range_limit: int | None = None
    # A block the node cannot return at the end of a scan range (a permanent gap in its
    # history, or a backend still catching up): the block, how often it was met in a row,
    # and when scanning this chain is tried again (monotonic). Acting goes on meanwhile.
    # The Bridge's REFUND_DELAY (read at verification): a transfer sent to this chain that
    # long ago may be cancelled by anyone.
    refund_delay: int | None = None
    gap_block: int | None = None
    gap_failures: int = 0
    scan_retry_at: float = 0.0

    @property
    def id(self) -> int:
        return self.cfg.chain_id

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def bridge(self) -> str:
        return self.client.bridge.address


class Relayer:
    def __init__(
        self,
        config: RelayerConfig,
        store: RelayerStore,
        sides: list[Side],
        account: LocalAccount,
        *,
        lock: StateLock | None = None,
        crashpoints: CrashPoints | None = None,
        clock=time.monotonic,
    ):
        self.config = config
        self.store = store
        self.sides = {s.id: s for s in sides}
        self.account = account
        self.address = to_checksum_address(account.address)
        self.metrics = RelayerMetrics()
        self.crash = crashpoints or CrashPoints(env=CRASH_ENV)
        self._lock = lock
        self._clock = clock
        self._stop = threading.Event()
        self._held: dict[tuple[int, int, str], float] = {}
        self._refusals: dict[tuple[int, int, str], str] = {}
        self._peer_retry: dict[str, float] = {}
        self._pruned_at: float | None = None
        # (destination chain, id) -> wall time this relayer first saw its unlock refused for
        # a permanent reason (since then, for the cancel's turn-taking). In memory only: after
        # a restart the next refused estimate finds it again.
        self._stuck: dict[tuple[int, str], float] = {}
        self.fatal: str | None = None
        self.http: HttpEndpoint | None = None
        self.http = health_endpoint(
            config.service,
            self.metrics,
            self.health,
            {"/attestations": self._attestations_route},
            thread_name="relayer-http",
            serves="health, metrics and attestations",
        )

    # -- health ------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        problems = []
        chains = {}
        for side in self.sides.values():
            cursor = self.store.cursor(side.id)
            if side.up is False:
                problems.append(f"chain {side.name}: {side.error}")
            elif side.verified and side.relayers and self.address not in side.relayers:
                problems.append(f"chain {side.name}: {self.address} is not in the relayer set")
            chains[side.name] = {
                "chain_id": side.id,
                "bridge": side.bridge,
                "up": side.up,
                "head": side.head,
                "cursor": cursor[0] if cursor else None,
                "threshold": side.threshold,
                "relayers": side.relayers,
                "counts": self.store.counts(side.id),
                "stuck": sorted(tid for chain, tid in self._stuck if chain == side.id),
                "gap_block": side.gap_block,
            }
        if self.fatal:
            problems.append(self.fatal)
        detail = {
            "status": "ok" if not problems else "degraded",
            "problems": problems,
            "relayer": self.address,
            "chains": chains,
            "refusals": sorted(set(self._refusals.values()))[:10],
        }
        return not problems, detail

    # -- chains ------------------------------------------------------------------------------

    def verify(self, side: Side) -> None:
        """First contact with a chain: it serves the configured id, and its Bridge is the
        peer of the other chain's. Raises `ChainError` (fatal) when not."""
        served = side.client.connect()
        check_served_chain(side.cfg.rpc_url, served, side.id)
        local = int(side.client.view("local_chain"))
        if local != side.id:
            raise ChainError(
                f"chain {side.name}: the Bridge at {side.bridge} takes chain id {local} for "
                f"transfers, the config says {side.id}"
            )
        other = next(s for s in self.sides.values() if s is not side)
        peer_chain = int(side.client.view("peer_chain"))
        peer_bridge = to_checksum_address(side.client.view("peer_bridge"))
        if (peer_chain, peer_bridge) != (other.id, other.bridge):
            raise ChainError(
                f"chain {side.name}: the Bridge at {side.bridge} has peer {peer_bridge} on "
                f"chain {peer_chain}, not {other.bridge} on chain {other.id}"
            )
        side.refund_delay = int(side.client.view("REFUND_DELAY"))
        # Bound only once verified: a Bridge address typed wrong binds nothing.
        self.store.bind(**{f"bridge:{side.id}": side.bridge})
        side.verified = True
        self.refresh_set(side, force=True)

    def refresh_set(self, side: Side, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - side.set_read_at < SET_REFRESH_S:
            return
        members = [to_checksum_address(a) for a in side.client.view("relayers")]
        side.relayers = sorted(members, key=lambda a: int(a, 16))
        side.threshold = int(side.client.view("threshold"))
        side.set_read_at = now
        if self.address not in side.relayers:
            log.warning(
                "not in the relayer set",
                extra={"chain": side.name, "relayer": self.address, "set": side.relayers},
            )

    def _side_ok(self, side: Side) -> None:
        if side.up is not True:
            log.info("chain up", extra={"chain": side.name, "chain_id": side.id})
        side.up, side.error, side.failures = True, None, 0
        self.metrics.chain_up.labels(side.name).set(1)

    def _side_down(self, side: Side, exc: BaseException) -> None:
        side.failures += 1
        wait = backoff(side.failures, self.config.service.retry_max_s)
        now = self._clock()
        side.retry_at = now + wait
        # Logged when it starts, when the error changes and once a minute while it lasts: an
        # outage that never ends must not look like a quiet relayer.
        if (
            side.up is not False
            or str(exc) != side.error
            or now - side.down_logged_at >= DOWN_LOG_S
        ):
            log.warning(
                "chain unreachable" if side.up is not False else "chain still unreachable",
                extra={
                    "chain": side.name,
                    "error": str(exc),
                    "retry_s": wait,
                    "failures": side.failures,
                },
            )
            side.down_logged_at = now
        side.up, side.error = False, str(exc)
        side.client.reset_nonce()
        self.metrics.chain_up.labels(side.name).set(0)

    # -- scanning ----------------------------------------------------------------------------

    def scan_once(self, side: Side) -> bool:
        """Scan one range of `side` (or rewind); True if there is more to scan now."""
        client, cfg = side.client, side.cfg
        head = client.block_number()
        side.head = head
        self.metrics.head.labels(side.name).set(head)
        cursor = self.store.cursor(side.id)
        if cursor is not None:
            canonical = client.block_hash(cursor[0]) if cursor[0] <= head else None
            if canonical != cursor[1]:
                self.rewind(side, head)
                return True
        last = cursor[0] if cursor is not None else side.start_block - 1
        safe = head - cfg.confirmations
        if safe <= last:
            return False
        span = min(side.range_limit or cfg.max_block_range, cfg.max_block_range)
        to = min(safe, last + span)
        end_hash = client.block_hash(to)
        if end_hash is None:
            # No block at `to` although the head is past it: read again later, not at once
            # (a node with a permanent gap would otherwise make the loop spin on it).
            self._scan_gap(side, to)
            return False
        try:
            raw = client.bridge_logs(last + 1, to)
        except ChainUnavailable:
            side.range_limit = max(1, span // 2)
            raise
        side.range_limit = min(cfg.max_block_range, span * 2)
        # The logs belong to the branch ending in `end_hash` only if it is still canonical.
        end_now = client.block_hash(to)
        if end_now is None:
            self._scan_gap(side, to)
            return False
        if end_now != end_hash:
            # A reorg during the read: read again after `poll_s`, not at once (an endpoint
            # whose backends disagree would otherwise flip the hash in a loop that never
            # slept).
            return False
        if cursor is not None and client.block_hash(cursor[0]) != cursor[1]:
            return True
        events = [e for e in (self._event(side, entry) for entry in raw) if e is not None]
        self.crash.hit("before_commit")
        new = self.store.advance(side.id, events, to, end_hash, cfg.reorg_window)
        for e in events:
            self.metrics.events.labels(side.name, e.kind).inc()
        self.metrics.cursor.labels(side.name).set(to)
        if side.gap_block is not None:
            log.info(
                "scan range readable again",
                extra={"chain": side.name, "block": side.gap_block, "times": side.gap_failures},
            )
            side.gap_block, side.gap_failures = None, 0
            self.metrics.gap.labels(side.name).set(0)
        if new:
            log.debug("events stored", extra={"chain": side.name, "to": to, "new": new})
        return to < safe

    def _scan_gap(self, side: Side, block: int) -> None:
        """The node has no block `block` (a scan range's end) under its head: scanning this
        chain backs off (0.5 s doubling up to `retry_max_s`); logged once per missing block,
        not per try, and shown by `relayer_scan_gap_block`."""
        side.gap_failures += 1
        wait = backoff(side.gap_failures, self.config.service.retry_max_s)
        side.scan_retry_at = self._clock() + wait
        self.metrics.gaps.labels(side.name).inc()
        self.metrics.gap.labels(side.name).set(block)
        if side.gap_block != block:
            log.warning(
                "the node has no block at the end of the scan range; scanning backs off",
                extra={"chain": side.name, "block": block, "head": side.head, "retry_s": wait},
            )
        side.gap_block = block

    def _event(self, side: Side, entry: dict) -> Event | None:
        topic = entry["topics"][0]
        topic = topic.to_0x_hex() if hasattr(topic, "to_0x_hex") else str(topic)
        name = side.events.get(topic)
        if name is None:
            return None
        decoded = getattr(side.client.bridge.events, name)().process_log(entry)
        args = decoded["args"]
        transfer_id = hexid(args["id"])
        transfer = None
        if name == "TransferSent":
            transfer = transfer_from_event(_Args(args), side.id, side.bridge)
            if hexid(transfer.id()) != transfer_id:
                log.error(
                    "TransferSent id does not match its fields; ignored",
                    extra={"chain": side.name, "id": transfer_id},
                )
                return None
        return Event(
            chain_id=side.id,
            number=int(entry["blockNumber"]),
            log_index=int(entry["logIndex"]),
            block_hash=entry["blockHash"].to_0x_hex(),
            tx_hash=entry["transactionHash"].to_0x_hex(),
            kind=EVENT_KINDS[name],
            id=transfer_id,
            transfer=transfer,
        )

    def rewind(self, side: Side, head: int) -> None:
        """The cursor's block is no longer canonical: go back to the newest kept block that
        still is (from the start block if none is: a reorg deeper than the window)."""
        fork = None
        for number, block_hash in self.store.checkpoints(side.id):
            if number <= head and side.client.block_hash(number) == block_hash:
                fork = number
                break
        dropped = self.store.rewind(side.id, fork)
        self.metrics.reorgs.labels(side.name).inc()
        self.metrics.rewound.labels(side.name).inc(dropped)
        # Calls made for what the lost blocks held are looked at again.
        self._held = {k: v for k, v in self._held.items() if k[0] != side.id}
        (log.warning if fork is not None else log.error)(
            "reorg under the cursor: rewound",
            extra={
                "chain": side.name,
                "to_block": fork if fork is not None else side.start_block - 1,
                "dropped_events": dropped,
                "deeper_than_window": fork is None,
            },
        )

    # -- attestations ------------------------------------------------------------------------

    def may_sign(self, chain_id: int, action: int, transfer_id: str) -> Transfer | None:
        """The transfer if this relayer's own confirmed scan supports `action` on `chain_id`
        for it; None otherwise. The only place a signature is decided."""
        found = self.store.sent(transfer_id)
        if found is None:
            return None
        source, transfer = found
        dest = transfer.dest_chain
        if source not in self.sides or dest not in self.sides or source == dest:
            return None
        if action == ACTION_UNLOCK and chain_id == dest:
            return transfer
        if action == ACTION_CANCEL and chain_id == dest:
            return None if self.store.has(dest, UNLOCKED, transfer_id) else transfer
        if action == ACTION_DELIVERED and chain_id == source:
            return transfer if self.store.has(dest, UNLOCKED, transfer_id) else None
        if action == ACTION_REFUND and chain_id == source:
            return transfer if self.store.has(dest, CANCELLED, transfer_id) else None
        return None

    def signature(self, chain_id: int, action: int, transfer_id: str) -> tuple | None:
        if self.may_sign(chain_id, action, transfer_id) is None:
            return None
        side = self.sides[chain_id]
        message = digest(chain_id, side.bridge, bytes.fromhex(transfer_id[2:]), action)
        sig = Account.unsafe_sign_hash(message, self.account.key)
        return (sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"))

    def _attestations_route(self, method: str, query: str, body: bytes) -> tuple[int, Any]:
        """`POST /attestations {"chain_id", "action", "ids": [...]}` (or GET with the same
        as query parameters, `ids` comma separated): this relayer's signatures for the ids its
        own scan supports; the others are left out."""
        try:
            if method == "POST":
                request = json.loads(body or b"{}")
                ids = list(request["ids"])
            else:
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                request = params
                ids = params["ids"].split(",")
            chain_id, action = int(request["chain_id"]), int(request["action"])
            if action not in ACTION_NAMES or chain_id not in self.sides or len(ids) > 1000:
                raise ValueError("bad request")
            ids = [str(i).lower() for i in ids]
        except (KeyError, ValueError, TypeError, AttributeError):
            return 400, {"error": "need chain_id, action (1-4) and at most 1000 ids"}
        signatures = {}
        for transfer_id in ids:
            sig = self.signature(chain_id, action, transfer_id)
            if sig is not None:
                signatures[transfer_id] = [sig[0], hexid(sig[1]), hexid(sig[2])]
        self.metrics.served.labels(ACTION_NAMES[action]).inc(len(signatures))
        return 200, {"signer": self.address, "signatures": signatures}

    def collect(self, side: Side, action: int, ids: list[str]) -> dict[str, dict[str, tuple]]:
        """Signatures by signer for each id: this relayer's and its peers' (each checked by
        recovering its signer, which must be in the current set)."""
        found: dict[str, dict[str, tuple]] = {i: {} for i in ids}
        members = set(side.relayers)
        for transfer_id in ids:
            sig = self.signature(side.id, action, transfer_id)
            if sig is not None and self.address in members:
                found[transfer_id][self.address] = sig
        if side.threshold <= 1 or not self.config.relayer.peers:
            return found
        now = self._clock()
        for peer in self.config.relayer.peers:
            if self._peer_retry.get(peer, 0.0) > now:
                continue
            try:
                answer = requests.post(
                    f"{peer}/attestations",
                    json={"chain_id": side.id, "action": action, "ids": ids},
                    timeout=self.config.relayer.peer_timeout_s,
                )
                answer.raise_for_status()
                signatures = answer.json()["signatures"]
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                self.metrics.peer_errors.labels(peer).inc()
                self._peer_retry[peer] = now + min(self.config.service.retry_max_s, 5.0)
                log.debug("peer unavailable", extra={"peer": peer, "error": _short(exc)})
                continue
            for transfer_id, raw in signatures.items():
                if transfer_id not in found:
                    continue
                try:
                    v, r, s = int(raw[0]), bytes.fromhex(raw[1][2:]), bytes.fromhex(raw[2][2:])
                    message = digest(side.id, side.bridge, bytes.fromhex(transfer_id[2:]), action)
                    signer = Account._recover_hash(message, vrs=(v, r, s))
                except Exception:
                    signer = None
                if signer is None or signer not in members:
                    log.warning("peer signature rejected", extra={"peer": peer, "id": transfer_id})
                    continue
                found[transfer_id][signer] = (v, r, s)
        return found

    # -- acting ------------------------------------------------------------------------------

    def outstanding(self) -> list[tuple[Side, int, list[Work]]]:
        """(chain, action, the calls still to make there) for every kind of call."""
        a, b = self.sides.values()
        out = []
        for source, dest in ((a, b), (b, a)):
            s, d = source.id, dest.id
            out.append((dest, ACTION_UNLOCK, self.store.needs_unlock(s, d, ACTION_UNLOCK, BATCH)))
            marks = self.store.needs_settle(s, d, UNLOCKED, COMPLETED, ACTION_DELIVERED, BATCH)
            out.append((source, ACTION_DELIVERED, marks))
            refunds = self.store.needs_settle(s, d, CANCELLED, REFUNDED, ACTION_REFUND, BATCH)
            out.append((source, ACTION_REFUND, refunds))
        return out

    def my_turn(self, side: Side, work: Work, now_wall: float) -> bool:
        if not side.relayers:
            return False
        leader = side.relayers[int(work.id, 16) % len(side.relayers)]
        if leader == self.address:
            return True
        return now_wall - work.since >= self.config.service.takeover_s

    def act_once(self) -> int:
        """Make the attested calls that are due; returns how many were mined or found done."""
        done = 0
        for side, action, works in self.outstanding():
            self.metrics.work.labels(side.name, ACTION_NAMES[action]).set(len(works))
            if action == ACTION_UNLOCK and not works:
                self._forget_stuck(side, works)
            if not works or side.up is not True or not side.verified:
                continue
            try:
                self.refresh_set(side)
                done += self._submit(side, works[: side.batch_limit])
                if action == ACTION_UNLOCK:
                    done += self._cancel_stuck(side, works)
                side.batch_limit = min(BATCH, side.batch_limit * 2)
                self._side_ok(side)
            except ChainUnavailable as exc:
                side.batch_limit = max(1, side.batch_limit // 2)
                self._side_down(side, exc)
            except ChainError as exc:
                log.warning("submitting failed", extra={"chain": side.name, "error": str(exc)})
                side.client.reset_nonce()
        return done

    def _cancel_stuck(self, side: Side, works: list[Work]) -> int:
        """Cancel, on their destination `side`, the transfers of `works` (still to unlock)
        whose unlock this relayer saw refused for a permanent reason, once they were sent
        `REFUND_DELAY` ago by the destination's clock (the Bridge refuses an earlier cancel
        but from the recipient). The refund on the source follows from the confirmed
        `TransferCancelled` like a mark from a `TransferUnlocked`."""
        stuck = self._forget_stuck(side, works)
        if not stuck or side.refund_delay is None:
            return 0
        now = side.client.latest_timestamp()
        due = [
            Work(side.id, ACTION_CANCEL, w.transfer, w.id, self._stuck[(side.id, w.id)])
            for w in stuck
            if now >= w.transfer.timestamp + side.refund_delay
        ]
        if not due:
            return 0
        return self._submit(side, due[: side.batch_limit])

    def _forget_stuck(self, side: Side, works: list[Work]) -> list[Work]:
        """Drop the stuck entries of `side` no longer to unlock (unlocked or cancelled
        meanwhile); returns the stuck ones of `works`."""
        waiting = {w.id for w in works}
        for key in [k for k in self._stuck if k[0] == side.id and k[1] not in waiting]:
            del self._stuck[key]
        stuck = [w for w in works if (side.id, w.id) in self._stuck]
        self.metrics.stuck.labels(side.name).set(len(stuck))
        return stuck

    def _note_unlock_estimate(self, side: Side, w: Work, reason: str | None, wall: float) -> None:
        key = (side.id, w.id)
        if reason is not None and any(r in reason for r in PERMANENT_REASONS):
            if key not in self._stuck:
                self._stuck[key] = wall
                log.warning(
                    "unlock refused for a permanent reason; cancelled once REFUND_DELAY old",
                    extra={
                        "chain": side.name,
                        "id": w.id,
                        "reason": reason,
                        "sent_at": w.transfer.timestamp,
                        "cancel_from": w.transfer.timestamp + (side.refund_delay or 0),
                    },
                )
        else:
            self._stuck.pop(key, None)

    def _submit(self, side: Side, works: list[Work]) -> int:
        """Estimate, sign, broadcast and wait for the due calls of one kind on one chain, each
        step one JSON-RPC batch for the whole set."""
        now, wall = self._clock(), time.time()
        action = works[0].action
        name = ACTION_NAMES[action]
        if self.address not in side.relayers:
            return 0
        due = [
            w
            for w in works
            if self._held.get((side.id, action, w.id), 0.0) <= now and self.my_turn(side, w, wall)
        ]
        if not due:
            return 0
        signatures = self.collect(side, action, [w.id for w in due])
        ready: list[tuple[Work, str]] = []
        for w in due:
            by_signer = signatures[w.id]
            if len(by_signer) < side.threshold:
                # The peers have not confirmed it yet.
                self._held[(side.id, action, w.id)] = now + 1.0
                continue
            chosen = sorted(by_signer, key=lambda a: int(a, 16))[: side.threshold]
            data = side.client.bridge.encode_abi(
                name, args=[_tuple(w.transfer), [by_signer[a] for a in chosen]]
            )
            ready.append((w, data))
        if not ready:
            return 0
        bridge = side.bridge
        estimates = side.client.batch(
            [
                ("eth_estimateGas", [{"from": self.address, "to": bridge, "data": data}])
                for _, data in ready
            ]
        )
        done = 0
        to_send: list[tuple[Work, str, int]] = []
        for (w, data), answer in zip(ready, estimates, strict=True):
            key = (side.id, action, w.id)
            reason = None if "error" not in answer else rpc_revert_reason(answer["error"])
            if action == ACTION_UNLOCK:
                self._note_unlock_estimate(side, w, reason, wall)
            if reason is None:
                to_send.append((w, data, int(answer["result"], 16)))
                continue
            if any(r in reason for r in DONE_REASONS):
                self.metrics.calls.labels(side.name, name, "done_already").inc()
                hold = MINED_HOLD_S
                source = w.transfer.source_chain
                if action == ACTION_UNLOCK and (
                    self.store.has(source, COMPLETED, w.id)
                    or self.store.has(source, REFUNDED, w.id)
                ):
                    hold = SETTLED_HOLD_S
                self._held[key] = now + hold
                self._refusals.pop(key, None)
                done += 1
                continue
            self.metrics.calls.labels(side.name, name, "refused").inc()
            if self._refusals.get(key, "").split(": ", 1)[-1] != reason:
                log.warning(
                    "call refused by the Bridge; retrying later",
                    extra={"chain": side.name, "action": name, "id": w.id, "reason": reason},
                )
            self._refusals[key] = f"{name} {w.id[:10]} on {side.name}: {reason}"
            hold = min(self.config.service.retry_max_s, 10.0)
            if action == ACTION_UNLOCK and (side.id, w.id) in self._stuck:
                # Refused for good: looked at again a minute later (the Council may have
                # raised the limit); its cancel is due on the destination's clock, not this.
                hold = STUCK_HOLD_S
            self._held[key] = now + hold
            if "relayer" in reason or "signature" in reason:
                side.set_read_at = -1e9
        if not to_send:
            return done
        fees = side.client._fees()
        signed = [
            (w, side.client.sign_data(data, int(gas * side.cfg.gas_margin), fees))
            for w, data, gas in to_send
        ]
        self.crash.hit("before_broadcast")
        answers = side.client.batch([("eth_sendRawTransaction", [hexid(s.raw)]) for _, s in signed])
        self.crash.hit("after_broadcast")
        self.crash.hit(f"after_broadcast_{name}")
        sent: list[tuple[Work, Signed]] = []
        for (w, tx), answer in zip(signed, answers, strict=True):
            error = answer.get("error")
            message = str((error or {}).get("message", "")).lower()
            if error is None or "already known" in message or "already imported" in message:
                sent.append((w, tx))
                continue
            # A refused transaction leaves a gap in the nonces: re-read them next time.
            side.client.reset_nonce()
            self._held[(side.id, action, w.id)] = now + 1.0
            log.warning(
                "transaction refused by the node",
                extra={"chain": side.name, "action": name, "id": w.id, "error": message},
            )
        return done + self._wait_receipts(side, name, sent)

    def _wait_receipts(self, side: Side, name: str, sent: list[tuple[Work, Signed]]) -> int:
        deadline = self._clock() + side.cfg.tx_timeout_s
        waiting = list(sent)
        mined = 0
        while waiting:
            answers = side.client.batch(
                [("eth_getTransactionReceipt", [s.tx_hash]) for _, s in waiting]
            )
            still = []
            for (w, signed), answer in zip(waiting, answers, strict=True):
                receipt = answer.get("result")
                if not receipt:
                    still.append((w, signed))
                    continue
                key = (side.id, w.action, w.id)
                self._refusals.pop(key, None)
                if int(receipt["status"], 16) == 1:
                    mined += 1
                    self._held[key] = self._clock() + MINED_HOLD_S
                    self.metrics.calls.labels(side.name, name, "mined").inc()
                    self.metrics.gas.labels(side.name).inc(int(receipt["gasUsed"], 16))
                    log.info(
                        f"{name} mined",
                        extra={
                            "chain": side.name,
                            "id": w.id,
                            "nonce": w.transfer.nonce,
                            "tx": signed.tx_hash,
                            "block": int(receipt["blockNumber"], 16),
                        },
                    )
                else:
                    # Raced by a peer between estimate and inclusion, most likely: the next
                    # estimate says so.
                    self.metrics.calls.labels(side.name, name, "reverted").inc()
                    self._held[key] = self._clock() + 1.0
                    log.info(f"{name} reverted on chain", extra={"id": w.id, "chain": side.name})
            waiting = still
            if not waiting:
                self.crash.hit("after_receipts")
                break
            if self._clock() >= deadline or self._stop.is_set():
                side.client.reset_nonce()
                log.warning(
                    "transactions not mined in time; checked again next turn",
                    extra={"chain": side.name, "count": len(waiting)},
                )
                break
            self._stop.wait(min(0.05, side.client.poll_s))
        return mined

    # -- loop --------------------------------------------------------------------------------

    def turn(self) -> int:
        """One turn: scan every reachable chain (up to a bounded number of ranges), then act.
        Returns a measure of progress (0 when idle)."""
        progress = 0
        for side in self.sides.values():
            if side.up is False and self._clock() < side.retry_at:
                continue
            if side.verified and self._clock() < side.scan_retry_at:
                continue
            try:
                if not side.verified:
                    self.verify(side)
                for _ in range(20):
                    more = self.scan_once(side)
                    progress += 1 if more else 0
                    if not more or self._stop.is_set():
                        break
                self._side_ok(side)
            except ChainUnavailable as exc:
                self._side_down(side, exc)
            except ChainError as exc:
                if not side.verified:
                    raise
                self._side_down(side, exc)
        progress += self.act_once()
        self.prune()
        return progress

    def prune(self, *, force: bool = False) -> int:
        """Remove settled transfers from the state by the retention settings, at most every
        `PRUNE_EVERY_S` (and on the first turn); returns how many were removed."""
        now = self._clock()
        if not force and self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
            return 0
        self._pruned_at = now
        svc = self.config.service
        removed = self.store.prune(
            time.time(),
            svc.retention_days * 86400.0 if svc.retention_days else None,
            svc.retention_transfers or None,
        )
        if removed:
            self.metrics.pruned.inc(removed)
            log.info(
                "settled transfers pruned from the state",
                extra={"removed": removed, "kept": self.store.transfers()},
            )
        return removed

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, *, stop: StopRequest | None = None) -> int:
        if stop is not None:
            stop.on_stop(self.stop)
        if self.http is not None:
            self.http.start()
        log.info(
            "relayer started",
            extra={
                "relayer": self.address,
                "chains": {s.name: s.id for s in self.sides.values()},
                "http_port": self.http.port if self.http else None,
                "peers": self.config.relayer.peers,
            },
        )
        poll = self.config.service.poll_s
        while not self._stop.is_set():
            try:
                progress = self.turn()
            except StateError as exc:
                self.fatal = str(exc)
                log.critical(str(exc))
                break
            except OracleError as exc:
                self.fatal = str(exc)
                log.critical(str(exc))
                break
            except Exception:
                log.exception("relayer turn failed")
                progress = 0
                self._stop.wait(min(poll, 1.0))
            if not progress:
                self._stop.wait(poll)
        log.info("stopping")
        self.close()
        log.info("relayer stopped")
        return 1 if self.fatal else 0

    def close(self) -> None:
        close_service(self.http, self._lock, self.store.close)


class _Args:
    """Attribute access to an event's args, as `transfer_from_event` expects."""

    def __init__(self, args):
        self._args = args

    def __getattr__(self, name: str) -> Any:
        return self._args[name]


def _tuple(t: Transfer) -> tuple:
    return (
        t.source_chain,
        to_checksum_address(t.source_bridge),
        t.nonce,
        t.dest_chain,
        to_checksum_address(t.sender),
        to_checksum_address(t.recipient),
        to_checksum_address(t.token),
        t.amount,
        t.timestamp,
    )


def bridge_location(cfg: BridgeChainConfig) -> tuple[str, int]:
    """(Bridge address, its deployment block) from the config or the deployments file."""
    if cfg.bridge_address is not None:
        return cfg.bridge_address, 0
    assert cfg.deployments_dir is not None
    record = contract(cfg.deployments_dir, cfg.chain_id, cfg.bridge_contract)
    return to_checksum_address(record.address), record.block


def make_side(cfg: BridgeChainConfig, account: LocalAccount | None, address: str) -> Side:
    bridge, block = bridge_location(cfg)
    client = BridgeClient(
        account=account,
        unit=address,
        ledger_address=bridge,
        ledger_abi=bridge_abi(),
        **cfg.client_options(),
    )
    side = Side(cfg, client, cfg.start_block if cfg.start_block is not None else block)
    side.events = {
        hexid(client.w3.keccak(text=_signature(client.bridge, name))): name for name in EVENT_KINDS
    }
    return side


def open_relayer(
    config: RelayerConfig,
    *,
    passphrase: str | None = None,
    crashpoints: CrashPoints | None = None,
) -> Relayer:
    """Everything `oracle relay` checks before it starts, each failure one `OracleError`
    line: the state lock, the key (wrong passphrase), the Bridges, each reachable chain's id
    and peer. A chain down at start is waited for (its id is checked at first contact)."""
    state_dir = config.service.state_dir
    with released_on_failure(StateLock(state_dir, what="relayer", lock_file=LOCK_FILE)) as lock:
        r = config.relayer
        account = load_key(r.keystore, r.passphrase_file, r.passphrase_env, passphrase)
        address = to_checksum_address(account.address)
        sides = [make_side(cfg, account, address) for cfg in config.chains]
        store = RelayerStore(Path(state_dir) / STATE_FILE)
        store.bind(relayer=address)
        relayer = Relayer(config, store, sides, account, lock=lock, crashpoints=crashpoints)
        for side in sides:
            try:
                relayer.verify(side)
                relayer._side_ok(side)
            except ChainUnavailable as exc:
                log.warning(
                    "chain unreachable at start; waiting for it",
                    extra={"chain": side.name, "error": str(exc)},
                )
                relayer._side_down(side, exc)
        return relayer
