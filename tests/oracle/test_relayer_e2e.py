"""The relayer end to end: `oracle relay` processes (a 2-of-3 set) between two Anvil chains,
killed, starved of a chain and reorged under. After each case, every transfer the test made
is unlocked once on its destination and marked on its source, and the totals hold: home
locked = remote wrapped supply + in flight, no nonce unlocked twice, no unlock of a transfer
never sent (`Pair.assert_conserved`).

The chains automine (a transaction is a block) and a `Miner` thread adds an empty block
every 0.1 s, so the last transfer also gets its confirmations on a quiet chain; it is paused
for each `anvil_reorg` (Anvil corrupts its chain when a block is mined during one).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from tests.oracle import bridge_rig as br
from tests.oracle.bridge_rig import Miner
from tests.oracle.rig import PASSPHRASE, REPO, Anvil, wait_for

# Hang guards, not expectations: on an idle machine each step takes a few seconds, but a
# relayer's start (imports, the keystore's scrypt, a scan of both chains) took over 60 s with
# the load average at 10, and CI machines may be that busy.
SLOW = 240


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    root = tmp_path_factory.mktemp("chains")
    a = Anvil(chain_id=br.CHAIN_A, state=root / "a.json").start()
    b = Anvil(chain_id=br.CHAIN_B, state=root / "b.json").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return br.relayer_keys(3, tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def pair(chains, keys, compiled, tmp_path_factory):
    a, b = chains
    root = tmp_path_factory.mktemp("pair")
    return br.deploy_pair(a.w3(), b.w3(), br.artifacts(compiled), [k[0] for k in keys], 2, root)


@pytest.fixture
def miner(chains):
    with Miner(*chains) as m:
        yield m


@pytest.fixture
def setups(pair, keys, chains, tmp_path):
    a, b = chains
    return br.relayer_setups(pair, keys, (a.url, b.url), tmp_path)


def start(setup: br.RelayerSetup, env: dict | None = None) -> br.RelayerProcess:
    return br.RelayerProcess(setup.write(), setup.root / "relayer.log", env).start()


def serving(setup: br.RelayerSetup, proc: br.RelayerProcess) -> bool:
    if not proc.alive():
        raise AssertionError(proc.log_text()[-3000:])
    health = setup.health()
    return bool(health) and all(c["up"] for c in health["chains"].values())


def scanned_to(setups, chain: str, block: int) -> bool:
    """Every relayer's cursor on `chain` is at `block` or beyond."""
    for s in setups:
        health = s.health()
        if not health or (health["chains"][chain]["cursor"] or -1) < block:
            return False
    return True


def settle(pair: br.Pair, procs, timeout: float = SLOW) -> None:
    def done() -> bool:
        for p in procs:
            if not p.alive():
                raise AssertionError(p.log_text()[-3000:])
        return pair.delivered()

    wait_for(done, timeout, "every transfer unlocked and marked", every=0.2)
    pair.assert_conserved()


def stop_all(procs) -> None:
    for p in procs:
        p.signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(30) == 0, p.log_text()[-3000:]


def test_sigkill_loop_while_relaying_both_ways(pair, setups, keys, miner):
    """Transfers both ways while relayers are killed with SIGKILL: at crash points (after a
    broadcast, after the receipts, before a scan's commit) and at random moments; each is
    restarted."""
    rng = random.Random(12)
    procs = [start(s) for s in setups]
    wait_for(lambda: all(serving(s, p) for s, p in zip(setups, procs, strict=True)), SLOW, "up")
    holders = [pair.holder(i) for i in range(3)]

    def leader(transfer: dict) -> str:
        return pair.relayers[int(transfer["id"], 16) % len(pair.relayers)].address

    points = ["after_broadcast:1", "after_receipts:1", "before_commit:3"]
    for round_ in range(6):
        victim = rng.randrange(3)
        if round_ < len(points):
            # The victim restarts with a crash point, and gets a transfer it leads.
            procs[victim].kill()
            env = {"POWERHIVE_RELAYER_CRASHPOINT": points[round_]}
            procs[victim] = start(setups[victim], env)
            for _ in range(30):
                transfer = pair.lock(rng.choice(holders), rng.randint(1, 50) * br.ENT)
                if leader(transfer) == keys[victim][0].address:
                    break
            assert procs[victim].wait(SLOW) == -signal.SIGKILL, procs[victim].log_text()[-3000:]
            procs[victim] = start(setups[victim])
            continue
        made = {pair.lock(rng.choice(holders), rng.randint(1, 50) * br.ENT)["id"] for _ in range(3)}
        holder = rng.choice(holders)
        wrapped = pair.b.token.functions.balanceOf(holder).call()
        if wrapped:
            pair.burn(holder, rng.randint(1, wrapped))
        # Progress is one of this round's locks unlocked: by name, as the relayers may well
        # have unlocked all three before a count taken here (issue 8: a wait for the count
        # to grow then waited for ever).
        wait_for(
            lambda m=made: any(u["id"] in m for u in pair.unlocked(pair.b)),
            SLOW,
            "progress before the kill",
        )
        procs[victim].kill()
        procs[victim] = start(setups[victim])
    settle(pair, procs)
    stop_all(procs)
    logs = "".join(s.root.joinpath("relayer.log").read_text() for s in setups)
    for point in points:
        assert f'"point": "{point.split(":")[0]}"' in logs


def test_a_chain_stopped_for_a_while_and_restarted(pair, setups, chains, miner):
    """Chain B stops (the relayers see it down and keep scanning A); transfers made meanwhile
    are relayed once it is back."""
    a, b = chains
    procs = [start(s) for s in setups]
    wait_for(lambda: all(serving(s, p) for s, p in zip(setups, procs, strict=True)), SLOW, "up")
    b.stop()
    wait_for(
        lambda: all(
            (s.health() or {}).get("chains", {}).get("B", {}).get("up") is False for s in setups
        ),
        30,
        "the relayers to see chain B down",
    )
    for i in range(4):
        pair.lock(pair.holder(i % 3), (i + 1) * br.ENT)
    head = a.w3().eth.block_number
    wait_for(lambda: scanned_to(setups, "A", head), 30, "chain A scanned while B is down")
    health = setups[0].health()
    assert health["status"] == "degraded" and any("chain B" in p for p in health["problems"])
    b.start()
    settle(pair, procs)
    stop_all(procs)


def _reorg(anvil: Anvil, depth: int, txs: list) -> None:
    answer = anvil.w3().provider.make_request("anvil_reorg", [depth, txs])
    assert "error" not in answer, answer


def test_reorg_under_the_cursor_on_either_chain(pair, setups, chains, miner):
    """A reorg replaces blocks every relayer had already scanned: on the source, the new
    branch holds a lock the old one did not (missed without a rewind); on the destination,
    the new branch lost an unlock (never re-made without a rewind)."""
    a, b = chains
    procs = [start(s) for s in setups]
    wait_for(lambda: all(serving(s, p) for s, p in zip(setups, procs, strict=True)), SLOW, "up")
    w3a = a.w3()
    holder = pair.holder(1)
    amount = 7 * br.ENT
    approve = pair.a.token.functions.approve(pair.a.bridge.address, amount)
    approved = w3a.eth.wait_for_transaction_receipt(approve.transact({"from": holder}))
    lock = pair.a.bridge.functions.lock(pair.a.token.address, amount, br.CHAIN_B, holder)
    lock_tx = lock.build_transaction({"from": holder, "gas": 300_000})
    lock_tx = {k: (hex(v) if isinstance(v, int) else v) for k, v in lock_tx.items()}
    for key in ("chainId", "nonce", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
        lock_tx.pop(key, None)
    # The approval stays under the fork point; then no block is mined (`Miner.paused`): the
    # head stays where it is read, every relayer scans to it, and the reorg replaces the
    # last 4 blocks, 3 of them scanned.
    deep = approved["blockNumber"] + 4
    wait_for(lambda: w3a.eth.block_number >= deep, 30, "the approval 4 blocks deep")
    with miner.paused():
        head = w3a.eth.block_number
        wait_for(lambda: scanned_to(setups, "A", head - 1), 30, "chain A scanned to its head")
        before = {s.root: s.health()["chains"]["A"]["cursor"] for s in setups}
        _reorg(a, 4, [[lock_tx, 0]])
    [sent] = [
        e
        for e in pair.a.bridge.events.TransferSent().get_logs(from_block=pair.a.deploy_block)
        if e.args.sender == holder and e.args.amount == amount
    ]
    assert sent.blockNumber <= min(before.values()), "the new lock must be under the cursors"
    pair.sent.append(
        {
            "source": br.CHAIN_A,
            "id": "0x" + bytes(sent.args.id).hex(),
            "nonce": sent.args.nonce,
            "amount": amount,
            "recipient": holder,
            "block": sent.blockNumber,
        }
    )
    settle(pair, procs)

    # The destination loses an unlock the relayers had seen (and probably marked already).
    transfer = pair.lock(pair.holder(2), 3 * br.ENT)
    wait_for(
        lambda: any(u["id"] == transfer["id"] for u in pair.unlocked(pair.b)), 30, "the unlock"
    )
    w3b = b.w3()
    [unlock] = [
        e
        for e in pair.b.bridge.events.TransferUnlocked().get_logs(from_block=pair.b.deploy_block)
        if "0x" + bytes(e.args.id).hex() == transfer["id"]
    ]
    wait_for(lambda: scanned_to(setups, "B", unlock.blockNumber + 2), 30, "B scanned past it")
    with miner.paused():
        _reorg(b, w3b.eth.block_number - unlock.blockNumber + 1, [])
    assert not any(u["id"] == transfer["id"] for u in pair.unlocked(pair.b))
    settle(pair, procs)
    stop_all(procs)
    logs = "".join(s.root.joinpath("relayer.log").read_text() for s in setups)
    assert logs.count("reorg under the cursor: rewound") >= 2 * len(setups)


REFUND_DELAY = 7 * 86400


def test_a_transfer_refused_for_good_is_cancelled_and_refunded_through_a_kill(
    pair, setups, chains, miner
):
    """B's Council lowers B's inbound per-transfer maximum under a lock's amount: its unlock
    is refused for a reason no wait ends. While it is younger than REFUND_DELAY it waits (a
    transfer under the maximum goes through meanwhile); once B's clock is past it, the
    relayers cancel it on B (M CANCEL attestations) and refund it on A. Every relayer runs
    with a crash point right after broadcasting a cancel: the one that sends it is
    SIGKILLed there and restarted. The sender has its tokens back once, nothing unlocked."""
    _, b = chains
    small = 10 * br.ENT
    pair.b.governed(
        pair.b.bridge, "set_limit", pair.b.token.address, br.INBOUND, br.CAPACITY, br.RATE, small
    )
    procs = []
    try:
        env = {"POWERHIVE_RELAYER_CRASHPOINT": "after_broadcast_cancel:1"}
        procs = [start(s, env) for s in setups]
        wait_for(lambda: all(serving(s, p) for s, p in zip(setups, procs, strict=True)), SLOW, "up")
        holder = pair.holder(3)
        balance = pair.a.token.functions.balanceOf(holder).call()
        stuck = pair.lock(holder, 5 * small)
        fine = pair.lock(pair.holder(0), small)
        wait_for(
            lambda: any(u["id"] == fine["id"] for u in pair.unlocked(pair.b)), SLOW, "the unlock"
        )
        wait_for(
            lambda: any(
                stuck["id"] in ((s.health() or {}).get("chains", {}).get("B", {}).get("stuck", []))
                for s in setups
            ),
            SLOW,
            "the unlock refused for good",
        )
        # Younger than REFUND_DELAY: nothing is cancelled (the Bridge would refuse it too).
        assert pair.cancelled(pair.b) == [] and all(p.alive() for p in procs)
        answer = b.w3().provider.make_request("evm_increaseTime", [REFUND_DELAY + 60])
        assert "error" not in answer, answer
        kills = 0

        def refunded() -> bool:
            nonlocal kills
            for i, p in enumerate(procs):
                if not p.alive():
                    assert p.wait(30) == -signal.SIGKILL, p.log_text()[-3000:]
                    kills += 1
                    procs[i] = start(setups[i])
            return stuck["id"] in pair.refunded(pair.a)

        wait_for(refunded, SLOW, "the stuck transfer cancelled and refunded", every=0.2)
        settle(pair, procs)
        assert kills >= 1, "no relayer was killed after broadcasting the cancel"
        assert pair.cancelled(pair.b) == [stuck["id"]]
        assert pair.refunded(pair.a) == [stuck["id"]]
        assert not any(u["id"] == stuck["id"] for u in pair.unlocked(pair.b))
        assert pair.a.token.functions.balanceOf(holder).call() == balance
        # Nothing is left to do, and no relayer keeps trying (its stuck list is empty).
        wait_for(
            lambda: all(
                (s.health() or {}).get("chains", {}).get("B", {}).get("stuck") == [] for s in setups
            ),
            SLOW,
            "no transfer left stuck",
        )
        stop_all(procs)
        logs = "".join(s.root.joinpath("relayer.log").read_text() for s in setups)
        assert '"point": "after_broadcast_cancel"' in logs
        assert "refund mined" in logs
    finally:
        for p in procs:
            p.kill()
        pair.b.governed(
            pair.b.bridge,
            "set_limit",
            pair.b.token.address,
            br.INBOUND,
            br.CAPACITY,
            br.RATE,
            br.MAX_TRANSFER,
        )


def _relay_once(config, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oracle", "relay", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_operator_errors_are_one_line_and_exit_1(pair, setups, chains, tmp_path):
    a, _ = chains
    setup = setups[0]
    _one_line(
        _relay_once(setup.write(), {"POWERHIVE_ORACLE_PASSPHRASE": "wrong"}), "wrong passphrase"
    )
    # A chain id the endpoint does not serve (the Bridge given by address, so the start
    # reaches the chain).
    wrong = dict(setup.chains[0], chain_id=999, bridge_address=pair.a.bridge.address)
    wrong.pop("deployments_dir")
    setup.chains = [wrong, setup.chains[1]]
    _one_line(_relay_once(setup.write("wrong-chain.toml")), "serves chain 31337", "says 999")
    # A chain whose Bridge is not the peer of the other one's (B's Bridge named for A).
    swapped = dict(wrong, chain_id=br.CHAIN_A, bridge_address=pair.a.council.address)
    setup.chains = [swapped, setup.chains[1]]
    _one_line(_relay_once(setup.write("not-a-bridge.toml")), "is not a Bridge")
    bad = tmp_path / "bad.toml"
    bad.write_text('[service]\nstate_dir = "s"\n[relayer]\nkeystore = "k.json"\n')
    _one_line(_relay_once(bad), "chains")
