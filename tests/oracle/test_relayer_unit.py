"""The relayer's logic without chains: its configuration, its store (what is left to do is
derived from the events), the cursor and the reorg rewind against an in-memory chain, the
signing policy behind `/attestations`, and the ABI it ships."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest
from eth_account import Account
from web3.providers.base import BaseProvider

from oracle.bridge_codec import (
    ACTION_CANCEL,
    ACTION_DELIVERED,
    ACTION_REFUND,
    ACTION_UNLOCK,
    Transfer,
    digest,
)
from oracle.config import to_toml
from oracle.errors import ChainError, ConfigError, StateError
from oracle.relayer import DOWN_LOG_S, PRUNE_EVERY_S, BridgeClient, Relayer, Side, bridge_abi
from oracle.relayer_config import load_relayer_config, parse_relayer_config
from oracle.relayer_store import (
    CANCELLED,
    COMPLETED,
    REFUNDED,
    SENT,
    UNLOCKED,
    Event,
    RelayerStore,
)
from oracle.retry import backoff

REPO = Path(__file__).resolve().parents[2]
A, B = 31337, 31338
BRIDGE_A = "0x" + "aa" * 20
BRIDGE_B = "0x" + "bb" * 20


def config_data(tmp_path: Path, **changes) -> dict:
    data = {
        "service": {"state_dir": str(tmp_path / "state"), "http_enabled": False},
        "relayer": {"keystore": str(tmp_path / "key.json"), "peers": ["http://10.0.0.2:9118"]},
        "chains": [
            {"name": "A", "rpc_url": "http://a:8545", "chain_id": A, "bridge_address": BRIDGE_A},
            {"name": "B", "rpc_url": "http://b:8545", "chain_id": B, "bridge_address": BRIDGE_B},
        ],
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field.startswith("chain0_"):
            data["chains"][0][field.removeprefix("chain0_")] = value
        else:
            data[section][field] = value
    return data


def test_the_shipped_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/powerhive-relayer")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/powerhive-relayer.service")
    config = load_relayer_config(REPO / "deploy" / "relayer.toml")
    assert [c.chain_id for c in config.chains] == [31337, 31338]
    assert config.relayer.keystore == Path("/run/credentials/powerhive-relayer.service/keystore")
    assert config.service.state_dir == Path("/var/lib/powerhive-relayer")


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"relayer__peers": ["ftp://x"]}, "http:// or https://"),
        ({"relayer__peers": ["http://x", "http://x"]}, "listed twice"),
        ({"service__poll_s": 0}, "poll_s"),
        ({"chains__chain0_chain_id": B}, "both chains have chain_id"),
        ({"chains__chain0_bridge_address": "0x1234"}, "not an address"),
        ({"chains__chain0_bridge_address": None}, "deployments_dir or bridge_address"),
        ({"chains__chain0_confirmations": 300}, "reorg_window must exceed"),
        ({"chains__chain0_rpc_url": "ws://a"}, "http:// or https://"),
        ({"chains__chain0_color": "red"}, "Extra inputs"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, changes, needle):
    data = config_data(tmp_path, **changes)
    data["chains"][0] = {k: v for k, v in data["chains"][0].items() if v is not None}
    with pytest.raises(ConfigError) as err:
        parse_relayer_config(data)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_one_chain_is_not_a_bridge(tmp_path):
    data = config_data(tmp_path)
    data["chains"] = data["chains"][:1]
    with pytest.raises(ConfigError, match="chains"):
        parse_relayer_config(data)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_relayer_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[service\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_relayer_config(bad)
    good = tmp_path / "relayer.toml"
    good.write_text(to_toml(config_data(tmp_path)))
    assert load_relayer_config(good).chains[1].bridge_address.lower() == BRIDGE_B


# -- store ------------------------------------------------------------------------------------


def transfer(nonce: int, source=A, dest=B, amount=5) -> Transfer:
    bridge = BRIDGE_A if source == A else BRIDGE_B
    who = "0x" + "11" * 20
    return Transfer(source, bridge, nonce, dest, who, who, "0x" + "22" * 20, amount, 1000 + nonce)


def sent_event(t: Transfer, number: int, log_index: int = 0, block_hash: str = "0x01") -> Event:
    return Event(t.source_chain, number, log_index, block_hash, "0xt", SENT, "0x" + t.id().hex(), t)


def other_event(chain: int, kind: str, t: Transfer, number: int, log_index: int = 0) -> Event:
    return Event(chain, number, log_index, "0x02", "0xt", kind, "0x" + t.id().hex())


@pytest.fixture
def store(tmp_path):
    s = RelayerStore(tmp_path / "relayer.sqlite")
    yield s
    s.close()


def ids(works) -> list[str]:
    return [w.id for w in works]


def test_work_is_derived_from_the_events(store):
    t0, t1, back = transfer(0), transfer(1), transfer(0, source=B, dest=A)
    store.advance(A, [sent_event(t0, 5), sent_event(t1, 6)], 6, "0xa6", 10)
    store.advance(B, [sent_event(back, 3)], 3, "0xb3", 10)
    assert ids(store.needs_unlock(A, B, ACTION_UNLOCK)) == [
        "0x" + t0.id().hex(),
        "0x" + t1.id().hex(),
    ]
    assert ids(store.needs_unlock(B, A, ACTION_UNLOCK)) == ["0x" + back.id().hex()]
    assert store.needs_settle(A, B, UNLOCKED, COMPLETED, ACTION_DELIVERED) == []
    # B unlocks t0: A must mark it; t1 still needs its unlock.
    store.advance(B, [other_event(B, UNLOCKED, t0, 7)], 7, "0xb7", 10)
    assert ids(store.needs_unlock(A, B, ACTION_UNLOCK)) == ["0x" + t1.id().hex()]
    [mark] = store.needs_settle(A, B, UNLOCKED, COMPLETED, ACTION_DELIVERED)
    assert (mark.chain_id, mark.action, mark.transfer) == (A, ACTION_DELIVERED, t0)
    store.advance(A, [other_event(A, COMPLETED, t0, 9)], 9, "0xa9", 10)
    assert store.needs_settle(A, B, UNLOCKED, COMPLETED, ACTION_DELIVERED) == []
    # t1 cancelled on B: refunded on A, never unlocked.
    store.advance(B, [other_event(B, CANCELLED, t1, 8)], 8, "0xb8", 10)
    assert store.needs_unlock(A, B, ACTION_UNLOCK) == []
    [refund] = store.needs_settle(A, B, CANCELLED, "refunded", ACTION_REFUND)
    assert refund.transfer == t1


def test_advance_is_idempotent_and_keeps_a_window(store):
    t0 = transfer(0)
    assert store.advance(A, [sent_event(t0, 5)], 5, "0xa5", 3) == 1
    # The same range scanned again (a crash before the commit of the next one): no double.
    assert store.advance(A, [sent_event(t0, 5)], 5, "0xa5", 3) == 0
    for n in range(6, 12):
        store.advance(A, [], n, f"0xa{n}", 3)
    assert [n for n, _ in store.checkpoints(A)] == [11, 10, 9]
    assert store.cursor(A) == (11, "0xa11")
    assert store.counts(A)[SENT] == 1


def test_rewind_brings_back_the_work_a_lost_block_held(store):
    t0 = transfer(0)
    store.advance(A, [sent_event(t0, 5)], 5, "0xa5", 10)
    store.advance(B, [], 6, "0xb6", 10)
    store.advance(B, [other_event(B, UNLOCKED, t0, 8)], 9, "0xb9", 10)
    assert store.needs_unlock(A, B, ACTION_UNLOCK) == []
    # B reorgs below block 8: the unlock is gone, so it is needed again.
    assert store.rewind(B, 6) == 1
    assert store.cursor(B) == (6, "0xb6")
    assert ids(store.needs_unlock(A, B, ACTION_UNLOCK)) == ["0x" + t0.id().hex()]
    # A reorgs below the lock: nothing to relay any more.
    store.rewind(A, None)
    assert store.cursor(A) is None and store.needs_unlock(A, B, ACTION_UNLOCK) == []


def test_retention_removes_settled_transfers_only(store):
    """Settled (marked or refunded on the source) transfers go by age and beyond a count,
    with all their events on both chains; nothing still to do is ever removed."""
    day = 86400.0
    t = {n: transfer(n) for n in range(7)}
    hid = {n: "0x" + t[n].id().hex() for n in t}
    store.advance(A, [sent_event(t[n], 10 + n) for n in t], 20, "0xa20", 50, now=0.0)
    # 0, 1, 2 unlocked and marked (settled on days 1, 2, 40); 3 unlocked, not marked;
    # 4 cancelled and refunded (day 3); 5 cancelled, not refunded; 6 pending.
    for n in (0, 1, 2, 3):
        store.advance(B, [other_event(B, UNLOCKED, t[n], 30 + n)], 40, "0xb40", 50, now=0.0)
    for n in (4, 5):
        store.advance(B, [other_event(B, CANCELLED, t[n], 30 + n)], 40, "0xb40", 50, now=0.0)
    for n, at, kind in ((0, 1, COMPLETED), (1, 2, COMPLETED), (2, 40, COMPLETED)):
        store.advance(A, [other_event(A, kind, t[n], 50 + n)], 60, "0xa60", 50, now=at * day)
    store.advance(A, [other_event(A, REFUNDED, t[4], 54)], 60, "0xa60", 50, now=3 * day)
    pending = {
        "unlock": ids(store.needs_unlock(A, B, ACTION_UNLOCK)),
        "mark": ids(store.needs_settle(A, B, UNLOCKED, COMPLETED, ACTION_DELIVERED)),
        "refund": ids(store.needs_settle(A, B, CANCELLED, REFUNDED, ACTION_REFUND)),
    }
    assert pending == {"unlock": [hid[6]], "mark": [hid[3]], "refund": [hid[5]]}
    assert store.prune(41 * day, None, None) == 0
    # By age (30 days at day 41): 0, 1 and 4 go, with their events on both chains.
    assert store.prune(41 * day, 30 * day, None) == 3
    assert store.transfers() == 4
    for n in (0, 1, 4):
        assert store.sent(hid[n]) is None and not store.has(B, UNLOCKED, hid[n])
        assert not store.has(B, CANCELLED, hid[n]) and not store.has(A, COMPLETED, hid[n])
    assert store.counts(B)[UNLOCKED] == 2 and store.counts(B)[CANCELLED] == 1
    # By count: no settled transfer kept; 2 goes, 3, 5 and 6 are still to do and stay.
    assert store.prune(41 * day, None, 0) == 1
    assert store.transfers() == 3 and store.counts(A)[COMPLETED] == 0
    assert ids(store.needs_unlock(A, B, ACTION_UNLOCK)) == pending["unlock"]
    assert ids(store.needs_settle(A, B, UNLOCKED, COMPLETED, ACTION_DELIVERED)) == pending["mark"]
    assert ids(store.needs_settle(A, B, CANCELLED, REFUNDED, ACTION_REFUND)) == pending["refund"]
    # The newest N settled are kept.
    for n in (3, 5):
        kind = COMPLETED if n == 3 else REFUNDED
        store.advance(A, [other_event(A, kind, t[n], 60 + n)], 70, "0xa70", 50, now=(42 + n) * day)
    assert store.prune(50 * day, None, 1) == 1
    assert store.sent(hid[5]) is not None and store.sent(hid[3]) is None
    assert store.sent(hid[6]) is not None


def test_the_relayer_prunes_by_its_config_at_start_and_then_periodically(tmp_path):
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    now = [0.0]
    data = config_data(tmp_path, service__retention_days=0, service__retention_transfers=1)
    config = parse_relayer_config(data)
    sides = [
        Side(cfg, chain, start_block=1, verified=True)
        for cfg, chain in zip(config.chains, (a, b), strict=True)
    ]
    r = ScanOnly(
        config, RelayerStore(tmp_path / "p.sqlite"), sides, Account.create(), clock=lambda: now[0]
    )
    for n in range(3):
        tn = transfer(n)
        r.store.advance(
            A, [sent_event(tn, 5 + n), other_event(A, COMPLETED, tn, 20 + n)], 30, "0xa", 10
        )
    assert r.prune() == 2 and r.store.transfers() == 1
    t3 = transfer(3)
    r.store.advance(A, [sent_event(t3, 9), other_event(A, COMPLETED, t3, 31)], 31, "0xa", 10)
    now[0] += 1.0
    assert r.prune() == 0  # not yet due
    now[0] += PRUNE_EVERY_S
    assert r.prune() == 1 and r.metrics.pruned._value.get() == 3
    with pytest.raises(ConfigError, match="retention_days"):
        parse_relayer_config(config_data(tmp_path, service__retention_days=-1))


def test_binding_refuses_another_key_or_bridge(store):
    store.bind(relayer="0x01", **{"bridge:31337": BRIDGE_A})
    store.bind(relayer="0x01")
    with pytest.raises(StateError, match="belongs to relayer 0x01"):
        store.bind(relayer="0x02")
    with pytest.raises(StateError, match="bridge:31337"):
        store.bind(**{"bridge:31337": BRIDGE_B})


# -- the cursor against an in-memory chain ---------------------------------------------------


class FakeChain:
    """Blocks with hashes, and Bridge events by block; `reorg` replaces the newest blocks."""

    _hashes = itertools.count(1)

    def __init__(self, chain_id: int, blocks: int):
        self.chain_id = chain_id
        self.blocks: list[str] = []
        self.events: dict[int, list[Event]] = {}
        self.calls = 0
        self.extend(blocks)

    def extend(self, n: int) -> None:
        for _ in range(n):
            self.blocks.append(f"0x{next(self._hashes):064x}")

    def add(self, t: Transfer | None = None, kind: str = SENT, transfer_for=None) -> None:
        """A new block holding one event."""
        self.extend(1)
        number = len(self.blocks) - 1
        if kind == SENT:
            e = sent_event(t, number, block_hash=self.blocks[number])
        else:
            e = other_event(self.chain_id, kind, transfer_for, number)
        self.events[number] = [e]

    def reorg(self, depth: int, new_blocks: int | None = None) -> None:
        keep = len(self.blocks) - depth
        del self.blocks[keep:]
        self.events = {n: e for n, e in self.events.items() if n < keep}
        self.extend(depth if new_blocks is None else new_blocks)

    # The client interface the scanner uses.
    def block_number(self) -> int:
        return len(self.blocks) - 1

    def block_hash(self, number: int) -> str | None:
        return self.blocks[number] if 0 <= number < len(self.blocks) else None

    def reset_nonce(self) -> None:  # nothing is signed here
        pass

    def bridge_logs(self, start: int, end: int) -> list[Event]:
        self.calls += 1
        return [e for n in range(start, end + 1) for e in self.events.get(n, [])]


class ScanOnly(Relayer):
    """The relayer's scanner over fake chains (their logs are already `Event`s)."""

    def _event(self, side, entry):
        return entry


def scanner(tmp_path, a: FakeChain, b: FakeChain, confirmations=2, window=8) -> ScanOnly:
    data = config_data(tmp_path)
    for entry in data["chains"]:
        entry.update(confirmations=confirmations, reorg_window=window, max_block_range=5)
    config = parse_relayer_config(data)
    sides = [
        Side(cfg, chain, start_block=1, verified=True)
        for cfg, chain in zip(config.chains, (a, b), strict=True)
    ]
    store = RelayerStore(tmp_path / "scan.sqlite")
    return ScanOnly(config, store, sides, Account.create())


def scan_all(relayer: ScanOnly, chain_id: int) -> None:
    side = relayer.sides[chain_id]
    for _ in range(100):
        if not relayer.scan_once(side):
            return
    raise AssertionError("scanning did not finish")


def test_scanning_waits_for_confirmations_and_resumes_from_the_cursor(tmp_path):
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=2)
    t0 = transfer(0)
    a.add(t0)  # block 3
    scan_all(r, A)
    assert r.store.cursor(A)[0] == 1 and r.store.needs_unlock(A, B, ACTION_UNLOCK) == []
    a.extend(2)  # block 3 has its two confirmations now
    scan_all(r, A)
    assert r.store.cursor(A) == (3, a.blocks[3])
    assert [w.transfer for w in r.store.needs_unlock(A, B, ACTION_UNLOCK)] == [t0]
    a.extend(20)
    scan_all(r, A)
    assert r.store.cursor(A)[0] == a.block_number() - 2
    # A restart (a new relayer on the same store) goes on from the cursor.
    calls = a.calls
    r2 = ScanOnly(r.config, r.store, list(r.sides.values()), Account.create())
    assert not r2.scan_once(r2.sides[A]) and a.calls == calls


def test_a_reorg_under_the_cursor_rewinds_to_the_fork_point(tmp_path):
    a, b = FakeChain(A, 10), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=1)
    t_old = transfer(0)
    a.add(t_old)  # block 10
    a.extend(5)
    scan_all(r, A)
    assert r.store.cursor(A)[0] == 14
    # Replace the last 7 blocks (9..15): the lock is gone, a different one is in block 11.
    a.reorg(7, new_blocks=1)
    t_new = transfer(0, amount=9)
    a.add(t_new)  # block 10
    a.extend(5)
    scan_all(r, A)
    assert r.metrics.reorgs.labels("A")._value.get() == 1
    assert [w.transfer for w in r.store.needs_unlock(A, B, ACTION_UNLOCK)] == [t_new]
    assert r.store.cursor(A) == (a.block_number() - 1, a.blocks[-2])


def test_a_reorg_deeper_than_the_window_rescans_from_the_start(tmp_path):
    a, b = FakeChain(A, 2), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=0, window=2)
    a.add(transfer(0))
    a.extend(30)
    scan_all(r, A)
    a.reorg(25)
    a.add(transfer(0, amount=3))
    scan_all(r, A)
    amounts = sorted(w.transfer.amount for w in r.store.needs_unlock(A, B, ACTION_UNLOCK))
    assert amounts == [3, 5]
    assert r.metrics.reorgs.labels("A")._value.get() == 1
    assert r.store.counts(A)[SENT] == 2  # the lock at block 2 survived, the new one added


def test_a_chain_restarted_shorter_than_the_cursor_is_a_rewind(tmp_path):
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=0)
    a.extend(10)
    scan_all(r, A)
    a.reorg(8, new_blocks=0)  # the node came back from an older state
    a.add(transfer(4))
    scan_all(r, A)
    assert r.store.cursor(A) == (a.block_number(), a.blocks[-1])
    assert len(r.store.needs_unlock(A, B, ACTION_UNLOCK)) == 1


class Node(BaseProvider):
    """A JSON-RPC node over a `FakeChain` (head, blocks by number) that has no block at the
    numbers in `missing` although its head is past them: what Anvil serves for good after
    a reorg raced by a concurrent `evm_mine`, and a load-balanced endpoint for a moment."""

    def __init__(self, chain: FakeChain):
        super().__init__()
        self.chain, self.missing = chain, set()

    def make_request(self, method, params):
        if method == "eth_blockNumber":
            result = hex(self.chain.block_number())
        else:
            assert method == "eth_getBlockByNumber", method
            number = int(params[0], 16)
            block_hash = self.chain.block_hash(number)
            result = None
            if block_hash is not None and number not in self.missing:
                result = {"number": hex(number), "hash": block_hash}
        return {"jsonrpc": "2.0", "id": 1, "result": result}


class NodeClient(BridgeClient):
    """The relayer's real chain client (block numbers and hashes through web3) on a `Node`;
    only the Bridge's logs come from the fake chain directly."""

    def __init__(self, chain: FakeChain):
        super().__init__(
            rpc_url="fake://node",
            account=None,
            unit="0x" + "33" * 20,
            ledger_address=BRIDGE_A,
            ledger_abi=bridge_abi(),
            poa=False,
            rpc_retries=0,
        )
        self.chain = chain
        self.node = Node(chain)
        self.w3.provider = self.node

    def bridge_logs(self, from_block: int, to_block: int) -> list[Event]:
        return self.chain.bridge_logs(from_block, to_block)


def test_a_block_the_node_lacks_under_its_head_is_a_rewind_not_an_outage(tmp_path):
    """The failure of issue 8: after a reorg on chain B the node had no block at the
    cursor's height although its head was past it; web3's `BlockNotFound` came out of the
    client as a `ChainError`, the chain was marked down, and every retry met the same
    missing block: the relayer never relayed on B again."""
    a, b = FakeChain(A, 10), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=1)
    client = NodeClient(a)
    r.sides[A].client = client
    t_old, t_new = transfer(0), transfer(1, amount=9)
    a.add(t_old)  # block 10
    a.extend(5)
    scan_all(r, A)
    cursor = r.store.cursor(A)[0]
    assert cursor == 14 and client.block_hash(cursor) == a.blocks[cursor]
    a.reorg(4)  # blocks 12..15 replaced
    a.add(t_new)  # block 16
    a.extend(5)
    client.node.missing = {cursor}
    assert client.block_hash(cursor) is None
    scan_all(r, A)
    assert r.metrics.reorgs.labels("A")._value.get() == 1
    assert r.store.cursor(A) == (a.block_number() - 1, a.blocks[-2])
    unlocks = r.store.needs_unlock(A, B, ACTION_UNLOCK)
    assert sorted(w.transfer.nonce for w in unlocks) == [0, 1]


class CountingNode(Node):
    def __init__(self, chain: FakeChain):
        super().__init__(chain)
        self.requests = 0

    def make_request(self, method, params):
        self.requests += 1
        return super().make_request(method, params)


def test_a_permanent_gap_at_a_range_end_backs_off_and_is_reported_once(tmp_path, caplog):
    """A node that cannot return a block under its head: a scan range ending in it used to
    return "more to scan now" for ever, and the loop never slept. Now scanning that chain
    backs off (the other chain and acting go on), the gap is logged once and shown in the
    metrics, and scanning resumes once the block is there."""
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    now = [1000.0]
    r = scanner(tmp_path, a, b, confirmations=1)
    r._clock = lambda: now[0]
    r.act_once = lambda: 0  # scanning only (the fake chains have no Bridge to call)
    client = NodeClient(a)
    client.node = CountingNode(a)
    client.w3.provider = client.node
    r.sides[A].client = client
    a.extend(3)  # head 5
    r.turn()
    assert r.store.cursor(A)[0] == 4
    t = transfer(0)
    a.add(t)  # block 6
    a.extend(12)  # head 18; ranges of 5: 5..9 then 10..14 and 15..17
    client.node.missing = {9}
    caplog.set_level(logging.INFO, logger="oracle.relayer")
    assert r.turn() == 0  # no progress: the run loop sleeps poll_s
    requests = client.node.requests
    for _ in range(50):
        now[0] += 0.009  # 50 turns within the first backoff (0.5 s)
        assert r.turn() == 0
    assert client.node.requests == requests, "chain A scanned again while backing off"
    assert r.store.cursor(A)[0] == 4
    assert r.metrics.gap.labels("A")._value.get() == 9
    # Chain B is still scanned meanwhile.
    b.extend(5)
    r.turn()
    assert r.store.cursor(B)[0] == b.block_number() - 1
    # Tries again after each backoff (doubling up to retry_max_s), logged once.
    for _ in range(6):
        now[0] += r.config.service.retry_max_s
        assert r.turn() == 0
    assert r.sides[A].gap_failures == 7
    assert r.metrics.gaps.labels("A")._value.get() == 7
    gap_logs = [rec for rec in caplog.records if "no block at the end" in rec.getMessage()]
    assert len(gap_logs) == 1 and gap_logs[0].block == 9
    # The node gets the block back: scanning resumes where it stood.
    client.node.missing = set()
    now[0] += r.config.service.retry_max_s
    r.turn()
    assert r.store.cursor(A)[0] == a.block_number() - 1
    assert [w.transfer for w in r.store.needs_unlock(A, B, ACTION_UNLOCK)] == [t]
    assert r.metrics.gap.labels("A")._value.get() == 0
    assert any("readable again" in rec.getMessage() for rec in caplog.records)


class FlippingChain(FakeChain):
    """An endpoint whose backends disagree about block `flip`: each read gives the other
    hash."""

    flip = -1
    reads = 0

    def block_hash(self, number: int) -> str | None:
        if number == self.flip:
            self.reads += 1
            return f"0x{self.reads % 2:064x}"
        return super().block_hash(number)


def test_an_end_block_whose_hash_flips_during_the_read_is_read_again_later(tmp_path):
    """The range's end block has another hash after `eth_getLogs` than before (a reorg during
    the read, or backends that disagree): the range is not stored, and the scan reports no
    progress, so the loop sleeps `poll_s` before reading it again instead of spinning."""
    a, b = FlippingChain(A, 12), FakeChain(B, 3)
    a.flip = 5  # the end of the first range (1..5)
    r = scanner(tmp_path, a, b, confirmations=1)
    r.act_once = lambda: 0
    assert r.turn() == 0
    assert r.store.cursor(A) is None and a.calls == 1 and a.reads == 2
    a.flip = -1
    scan_all(r, A)
    assert r.store.cursor(A)[0] == a.block_number() - 1


def test_a_chain_that_stays_down_is_logged_again_when_its_error_changes(tmp_path, caplog):
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    now = [100.0]
    r = scanner(tmp_path, a, b)
    r._clock = lambda: now[0]
    side = r.sides[A]
    caplog.set_level(logging.WARNING, logger="oracle.relayer")
    for error in ("refused", "refused", "block 7 not found", "block 7 not found"):
        r._side_down(side, ChainError(error))
        now[0] += 1.0
    now[0] += DOWN_LOG_S
    r._side_down(side, ChainError("block 7 not found"))
    logged = [(rec.getMessage(), rec.error) for rec in caplog.records]
    assert logged == [
        ("chain unreachable", "refused"),
        ("chain still unreachable", "block 7 not found"),
        ("chain still unreachable", "block 7 not found"),
    ]


class RefusingClient(NodeClient):
    """A real client (the Bridge's ABI encodes the calls) whose every estimate reverts with
    `reason`; it counts the estimates."""

    def __init__(self, chain: FakeChain, reason: str):
        super().__init__(chain)
        self.reason, self.estimates = reason, 0

    def batch(self, requests_):
        assert all(method == "eth_estimateGas" for method, _ in requests_), requests_
        self.estimates += len(requests_)
        return [{"error": {"message": f"execution reverted: {self.reason}"}} for _ in requests_]


def test_an_unlock_found_done_for_a_settled_transfer_is_not_retried_every_few_seconds(tmp_path):
    """After pruning, a source rescanned from its start brings back a settled transfer's
    `TransferSent` and `TransferCompleted` but not the destination's unlock: the unlock
    looks needed, its estimate says "already processed", and it is then left alone for
    `SETTLED_HOLD_S`, not estimated again every `MINED_HOLD_S`."""
    from oracle.relayer import MINED_HOLD_S, SETTLED_HOLD_S

    a, b = FakeChain(A, 3), FakeChain(B, 3)
    now = [0.0]
    r = scanner(tmp_path, a, b)
    r._clock = lambda: now[0]
    side = r.sides[B]
    side.client = RefusingClient(b, "bridge: already processed")
    side.relayers, side.threshold, side.up = [r.address], 1, True
    side.set_read_at = 1e18  # no re-read of the set (there is no Bridge)
    settled, fresh = transfer(0), transfer(1)
    r.store.advance(
        A,
        [sent_event(settled, 5), sent_event(fresh, 6, 1), other_event(A, COMPLETED, settled, 9)],
        9,
        "0xa9",
        10,
    )
    works = r.store.needs_unlock(A, B, ACTION_UNLOCK)
    assert len(works) == 2 and r._submit(side, works) == 2
    assert side.client.estimates == 2
    now[0] += MINED_HOLD_S + 0.1
    assert r._submit(side, works) == 1 and side.client.estimates == 3  # only the fresh one
    now[0] += SETTLED_HOLD_S
    assert r._submit(side, works) == 2


# -- cancelling what can never be unlocked ---------------------------------------------------


def test_only_a_permanent_refusal_older_than_refund_delay_is_cancelled(tmp_path):
    """The cancel policy: an unlock refused for a reason no wait ends (over the per-transfer
    maximum, a token not listed, ...) is cancelled once the transfer is REFUND_DELAY old by
    the destination's clock; a temporary refusal (pause, rate limit, missing signatures) is
    waited out; an unlock that goes through again (the Council raised the maximum) forgets it.
    """
    from oracle.relayer_store import Work

    a, b = FakeChain(A, 3), FakeChain(B, 3)
    r = scanner(tmp_path, a, b)
    side = r.sides[B]
    side.refund_delay = 7 * 86400
    clock = {"B": 0}
    side.client.latest_timestamp = lambda: clock["B"]
    submitted = []
    r._submit = lambda s, works: submitted.append(works) or len(works)
    t = {n: transfer(n) for n in range(4)}
    works = [Work(B, ACTION_UNLOCK, t[n], "0x" + t[n].id().hex(), 0.0) for n in t]
    temporary = (
        "bridge: paused",
        "bridge: over limit, wait 3000 s",
        "bridge: fewer than M signatures",
        "bridge: signer not a relayer",
    )
    for w, reason in zip(works, temporary, strict=True):
        r._note_unlock_estimate(side, w, reason, 50.0)
    r._note_unlock_estimate(side, works[1], "bridge: over per-transfer max", 60.0)
    r._note_unlock_estimate(side, works[2], "bridge: token not listed", 70.0)
    assert sorted(tid for _, tid in r._stuck) == sorted([works[1].id, works[2].id])
    # A second refusal keeps the first time (the cancel's turn-taking counts from it).
    r._note_unlock_estimate(side, works[1], "bridge: over per-transfer max", 99.0)
    clock["B"] = t[1].timestamp + side.refund_delay - 1
    assert r._cancel_stuck(side, works) == 0 and submitted == []
    assert r.metrics.stuck.labels("B")._value.get() == 2
    # Transfer 1 is REFUND_DELAY old now, transfer 2 (sent a second later) not yet.
    clock["B"] += 1
    assert r._cancel_stuck(side, works) == 1
    [[cancel]] = submitted
    assert (cancel.chain_id, cancel.action, cancel.transfer, cancel.since) == (
        B,
        ACTION_CANCEL,
        t[1],
        60.0,
    )
    # The unlock of 2 goes through after all; 1 is no longer to unlock (cancelled).
    r._note_unlock_estimate(side, works[2], None, 80.0)
    assert r._cancel_stuck(side, [works[0], works[2], works[3]]) == 0
    assert r._stuck == {} and r.metrics.stuck.labels("B")._value.get() == 0


# -- signing policy ---------------------------------------------------------------------------


def test_signatures_only_for_what_the_own_scan_confirmed(tmp_path):
    a, b = FakeChain(A, 3), FakeChain(B, 3)
    r = scanner(tmp_path, a, b, confirmations=0)
    for side, bridge in zip(r.sides.values(), (BRIDGE_A, BRIDGE_B), strict=True):
        side.client.bridge = type("C", (), {"address": bridge})()
    t0 = transfer(0)
    tid = "0x" + t0.id().hex()
    assert r.signature(B, ACTION_UNLOCK, tid) is None  # not seen yet
    a.add(t0)
    scan_all(r, A)
    v, rr, s = r.signature(B, ACTION_UNLOCK, tid)
    signer = Account._recover_hash(digest(B, BRIDGE_B, t0.id(), ACTION_UNLOCK), vrs=(v, rr, s))
    assert signer == r.address
    # The wrong chain for the action, or an action its scan does not support: nothing.
    assert r.signature(A, ACTION_UNLOCK, tid) is None
    assert r.signature(A, ACTION_DELIVERED, tid) is None
    assert r.signature(A, ACTION_REFUND, tid) is None
    assert r.signature(B, ACTION_CANCEL, tid) is not None  # not unlocked: may be cancelled
    b.add(kind=UNLOCKED, transfer_for=t0)
    scan_all(r, B)
    assert r.signature(A, ACTION_DELIVERED, tid) is not None
    assert r.signature(B, ACTION_CANCEL, tid) is None  # unlocked: never cancelled
    assert r.signature(A, ACTION_REFUND, tid) is None
    status, body = r._attestations_route(
        "POST",
        "",
        json.dumps({"chain_id": A, "action": 3, "ids": [tid, "0x" + "00" * 32]}).encode(),
    )
    assert status == 200 and list(body["signatures"]) == [tid] and body["signer"] == r.address
    status, body = r._attestations_route("GET", f"chain_id={B}&action=1&ids={tid}", b"")
    assert status == 200 and list(body["signatures"]) == [tid]
    for bad in (b"{}", b'{"chain_id": 1, "action": 1, "ids": []}', b"not json"):
        assert r._attestations_route("POST", "", bad)[0] == 400
    assert (
        r._attestations_route(
            "POST", "", json.dumps({"chain_id": A, "action": 9, "ids": []}).encode()
        )[0]
        == 400
    )


def test_backoff_grows_to_its_ceiling():
    assert [backoff(n, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def _signature_of(item: dict) -> tuple:
    def types(params):
        return tuple(
            (p["type"], tuple(c["type"] for c in p.get("components") or ()), p.get("indexed"))
            for p in params or ()
        )

    return (
        item["type"],
        item.get("name"),
        types(item.get("inputs")),
        types(item.get("outputs")),
        item.get("stateMutability"),
    )


def test_the_shipped_abi_is_the_compiled_bridge(compiled):
    """`oracle/abi/Bridge.json` must follow the contract (regenerate it after a change)."""
    abi, _ = compiled("Bridge")
    assert sorted(map(_signature_of, bridge_abi())) == sorted(map(_signature_of, abi))
