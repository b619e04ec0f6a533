"""`oracle queen` end to end: real `oracle queen` processes against Anvil with the hive market
deployed, three workers (two counter-file meters the test sets, one simulated PV meter), two
batches per period. Periods settled equal the meters; SIGKILL after the outbox write, between
batches and inside a batch, and a chain stopped and restarted, each settle every period exactly
once; a key that is not the queen, or a worker above its rated maximum, is one line and exit 1
with nothing marked sent."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_utils import to_checksum_address as to_checksum

from oracle.errors import ConfigError
from oracle.queen import split
from oracle.queen_config import load_queen_config, parse_queen_config
from tests.oracle.queen_rig import QueenSetup, deploy_market
from tests.oracle.rig import REPO, Anvil, Counters, OracleProcess, free_port, make_unit, wait_for

# Simulated PV at an hour per wall second: a few Wh per poll, far below the rated maximum.
PV = {
    "name": "pv",
    "driver": "simulated",
    "rated_power_w": 5000,
    "options": {
        "profile": "pv",
        "peak_w": 4000,
        "compression": 3600,
        "seed": 7,
        "start": "2024-06-21T09:00:00Z",
    },
}


class QueenProcess(OracleProcess):
    command = "queen"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """An Anvil of this module, with a state file so the chain can stop and come back."""
    with Anvil(state=tmp_path_factory.mktemp("queen-chain") / "state.json") as anvil:
        yield anvil


@pytest.fixture(scope="module")
def rig(chain, project, tmp_path_factory):
    return deploy_market(chain.w3(), project, tmp_path_factory.mktemp("queen-deployments"))


def make_setup(tmp_path, chain, rig, *, queen_key=None, max_wh=2**32 - 1, batch_size=2):
    """A hive of three workers whose queen is a fresh key (or `queen_key`'s owner)."""
    key = make_unit(rig.w3, tmp_path)
    hive = rig.new_hive(queen_key.address if queen_key else key.address, 3, max_wh)
    meters = [Counters(tmp_path, "house"), Counters(tmp_path, "shop")]
    workers = [
        {**meters[0].meter("house", stored=False), "address": hive.workers[0]},
        {**meters[1].meter("shop", stored=False), "address": hive.workers[1]},
        {**PV, "address": hive.workers[2]},
    ]
    setup = QueenSetup(tmp_path, chain.url, rig.deployments_dir, key, hive.id, workers, queen={})
    setup.queen["batch_size"] = batch_size
    return setup, hive, meters


def start(setup, tmp_path, crash: str | None = None, name: str = "queen.log") -> QueenProcess:
    env = {"POWERHIVE_QUEEN_CRASHPOINT": crash} if crash else {}
    proc = QueenProcess(setup.write(), tmp_path / name, env).start()
    wait_for(lambda: len(setup.baselines()) == 3, 30, "the queen's baselines")
    return proc


def close_and_expect(hive, meters, expected, imp=(0, 0), exp=(0, 0)):
    """Counters move by `imp`/`exp` Wh, the running period ends; what the test expects on
    chain for the two counter meters is noted in `expected[period]`."""
    for m, i, e in zip(meters, imp, exp, strict=True):
        m.add(imp=i, exp=e)
    period = hive.close_period()
    expected[period] = {
        hive.workers[0]: (exp[0], imp[0]),
        hive.workers[1]: (exp[1], imp[1]),
    }
    return period


def assert_exactly_once(setup, hive, expected, pv_first):
    """Every period on chain once, each worker once in it; the counter meters' Wh as set; the
    simulated meter's Wh over all periods equal to its counter's growth."""
    settled = hive.settled()
    assert sorted(settled) == sorted(expected), (settled, expected)
    for period, entries in settled.items():
        assert sorted(w for w, _, _ in entries) == sorted(hive.workers), (period, entries)
        got = {w: (p, c) for w, p, c in entries}
        for worker, wh in expected[period].items():
            assert got[worker] == wh, (period, worker, got[worker], wh)
    recorded = setup.periods()
    for period, entries in settled.items():
        assert sorted(entries) == sorted(
            (e.worker, e.produced, e.consumed) for e in recorded[period].entries
        )
        assert recorded[period].status == "settled"
    pv = hive.workers[2]
    pv_last = setup.baselines()[pv][1]
    pv_chain = [sum(p for w, p, _ in e if w == pv) for e in settled.values()]
    pv_used = [sum(c for w, _, c in e if w == pv) for e in settled.values()]
    assert sum(pv_chain) == pv_last.export_wh - pv_first.export_wh > 0
    assert sum(pv_used) == pv_last.import_wh - pv_first.import_wh
    assert hive.next_period() == max(expected) + 1
    # Every transaction the queen recorded is accounted for: mined, or never broadcast.
    txs = setup.txs()
    assert {t["status"] for t in txs} <= {"mined", "dropped", "reorged"}, txs
    mined = [t for t in txs if t["status"] == "mined"]
    assert sum(t["workers"] for t in mined) == len(settled) * len(hive.workers)
    assert not hive.state()[6]  # no period left open


def test_periods_settle_equal_to_the_meters_across_sigkills(tmp_path, chain, rig):
    setup, hive, meters = make_setup(tmp_path, chain, rig)
    expected: dict[int, dict] = {}
    proc = start(setup, tmp_path)
    pv_first = setup.baselines()[hive.workers[2]][1]

    # A period in two batches, nothing odd.
    p = close_and_expect(hive, meters, expected, imp=(700, 0), exp=(0, 1200))
    wait_for(lambda: hive.next_period() > p, 30, "period 0 settled")

    # SIGKILL right after the period's outbox write, before any transaction.
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    proc = start(setup, tmp_path, crash="after_record:1")
    p = close_and_expect(hive, meters, expected, imp=(300, 40), exp=(5, 900))
    assert proc.wait() == -signal.SIGKILL
    assert setup.periods()[p].status == "pending" and hive.next_period() == p

    # SIGKILL after the first batch was signed and recorded, before it was broadcast.
    proc = start(setup, tmp_path, crash="before_broadcast:1")
    assert proc.wait() == -signal.SIGKILL
    assert hive.next_period() == p and not hive.state()[6]
    unsent = setup.txs()[-1]  # recorded, never broadcast: its nonce is used again
    assert unsent["status"] == "sent" and unsent["period"] == p and unsent["batch"] == 0

    # SIGKILL between the period's two batches.
    proc = start(setup, tmp_path, crash="after_batch:1")
    assert proc.wait() == -signal.SIGKILL
    state = hive.state()
    assert state[2] == p and state[6] and state[5] == 2  # open, two workers settled

    # SIGKILL inside a batch: the last worker's batch broadcast (and mined: instant mining),
    # its receipt never recorded.
    proc = start(setup, tmp_path, crash="after_broadcast:1")
    assert proc.wait() == -signal.SIGKILL
    assert hive.next_period() == p + 1 and setup.periods()[p].status == "pending"

    # Once more inside the second batch of a fresh period, after the previous one was found
    # settled on chain (nothing sent for it).
    proc = start(setup, tmp_path, crash="after_broadcast:2")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the mined period noticed")
    p = close_and_expect(hive, meters, expected, imp=(0, 650), exp=(80, 0))
    assert proc.wait() == -signal.SIGKILL
    assert hive.next_period() == p + 1 and setup.periods()[p].status == "pending"

    # Back without crash points: nothing left to send twice, the next period goes out.
    proc = start(setup, tmp_path)
    wait_for(lambda: setup.periods().get(p) and setup.periods()[p].status == "settled", 30, "p")
    p = close_and_expect(hive, meters, expected, imp=(10, 20), exp=(30, 40))
    wait_for(lambda: hive.next_period() > p, 30, "the last period settled")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the outbox to follow")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0

    # Two periods end while the queen is stopped: one reading, split evenly over both.
    meters[0].add(imp=901)
    meters[1].add(exp=60)
    first, second = hive.close_period(), hive.close_period()
    expected[first] = {hive.workers[0]: (0, 451), hive.workers[1]: (30, 0)}
    expected[second] = {hive.workers[0]: (0, 450), hive.workers[1]: (30, 0)}
    proc = start(setup, tmp_path)
    wait_for(lambda: hive.next_period() > second, 30, "both periods settled")
    wait_for(lambda: setup.periods()[second].status == "settled", 30, "the outbox to follow")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)
    log = (tmp_path / "queen.log").read_text()
    assert '"level": "critical"' not in log and "Traceback" not in log


def test_chain_down_then_back(tmp_path, chain, rig):
    """The chain stops just before a period ends: the queen records the period on its own
    clock meanwhile and submits it once the chain is back."""
    setup, hive, meters = make_setup(tmp_path, chain, rig, batch_size=3)
    port = free_port()
    setup.service.update(http_enabled=True, http_port=port)
    expected: dict[int, dict] = {}
    proc = start(setup, tmp_path)
    pv_first = setup.baselines()[hive.workers[2]][1]
    p = close_and_expect(hive, meters, expected, imp=(10, 0), exp=(0, 20))
    wait_for(lambda: hive.next_period() > p, 30, "the first period settled")

    # Four seconds before the next period ends, as the queen has seen it, the chain stops.
    meters[0].add(imp=111)
    meters[1].add(exp=222)
    start_ts, length = hive.state()[0], hive.state()[1]
    boundary = start_ts + (p + 2) * length
    w3 = chain.w3()
    w3.provider.make_request("evm_setNextBlockTimestamp", [boundary - 4])
    w3.provider.make_request("evm_mine", [])
    wait_for(lambda: _health(port)["chain_time"] >= boundary - 4, 20, "the queen to see it")
    chain.stop()
    wait_for(lambda: (p + 1) in setup.periods(), 20, "the period recorded with the chain down")
    assert setup.periods()[p + 1].status == "pending"
    wait_for(lambda: "the chain is unreachable" in _health(port)["problems"], 20, "degraded")
    metrics = _metrics(port)
    assert metrics["queen_chain_up"] == 0 and metrics["queen_outbox_depth"] == 1
    expected[p + 1] = {hive.workers[0]: (0, 111), hive.workers[1]: (222, 0)}

    chain.start()  # same state; Anvil's clock restarts at the wall clock: put it back
    w3 = chain.w3()
    w3.provider.make_request("evm_setNextBlockTimestamp", [boundary + 1])
    w3.provider.make_request("evm_mine", [])
    wait_for(lambda: hive.next_period() > p + 1, 30, "the period submitted once back")
    wait_for(lambda: _health(port)["status"] == "ok", 20, "healthy again")
    settled = wait_for(lambda: _metrics(port)["queen_periods_settled_total"] == 2, 20, "count")
    assert settled
    metrics = _metrics(port)
    assert metrics["queen_chain_up"] == 1
    assert metrics['queen_batches_total{outcome="mined"}'] == 2  # one batch of 3 each
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)
    status = subprocess.run(
        [sys.executable, "-m", "oracle", "queen-status", "--config", str(setup.write()), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(status.stdout)
    assert report["periods"] == {"pending": 0, "settled": 2, "final": 0, "not_final": 2}
    assert report["last_settled"]["period"] == p + 1
    assert report["chain"]["next_period"] == p + 2 and report["chain"]["is_queen"]


def test_a_power_cut_and_a_reboot_with_a_new_boot_id_lose_and_repeat_nothing(tmp_path, chain, rig):
    """Power is cut just after the period's first batch went out (SIGKILL after the
    broadcast); the meters move while the host is off; it boots again (another boot id: the
    baselines' monotonic times are of the old boot). The batch is counted, not sent again,
    the rest of the period goes out, and the energy of the time off is in the next period."""
    setup, hive, meters = make_setup(tmp_path, chain, rig)
    expected: dict[int, dict] = {}
    proc = start(setup, tmp_path, crash="after_broadcast:1")
    pv_first = setup.baselines()[hive.workers[2]][1]
    p = close_and_expect(hive, meters, expected, imp=(10, 0), exp=(0, 20))
    assert proc.wait(30) == -signal.SIGKILL
    assert [t["status"] for t in setup.txs()] == ["sent"]
    meters[0].add(imp=7)  # while the power is off
    meters[1].add(exp=9)
    db = sqlite3.connect(setup.state_dir / "queen.sqlite", timeout=30)
    with db:  # the new boot: the old boot's monotonic clock means nothing any more
        rows = db.execute("UPDATE baselines SET clock = 'boot:before-the-cut', monotonic = 1e6")
        assert rows.rowcount == 3
    db.close()

    proc = start(setup, tmp_path, name="queen2.log")
    wait_for(lambda: _status(setup, p) == "settled", 30, "the period settled after the boot")
    p1 = close_and_expect(hive, meters, expected, imp=(5, 0), exp=(0, 6))
    expected[p1] = {hive.workers[0]: (0, 5 + 7), hive.workers[1]: (6 + 9, 0)}
    wait_for(lambda: _status(setup, p1) == "settled", 30, "the next period settled")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)
    assert [t["status"] for t in setup.txs()].count("mined") == 4  # 2 batches a period


def test_a_first_start_without_the_chain_binds_when_it_comes(tmp_path, chain, rig):
    """Never started before and the chain down: the queen waits (it knows neither the
    market's start nor its period length yet), binds at the first contact, then settles."""
    setup, hive, meters = make_setup(tmp_path, chain, rig)
    chain.stop()
    proc = QueenProcess(setup.write(), tmp_path / "queen.log").start()
    wait_for(lambda: "chain unreachable at start" in proc.log_text(), 30, "the queen to wait")
    assert proc.alive() and setup.baselines() == {}
    chain.start()  # Anvil's clock restarts at the wall clock: put it back
    w3 = chain.w3()
    latest = w3.eth.get_block("latest")["timestamp"]
    w3.provider.make_request("evm_setNextBlockTimestamp", [latest + 1])
    w3.provider.make_request("evm_mine", [])
    wait_for(lambda: len(setup.baselines()) == 3, 30, "the baselines after binding")
    pv_first = setup.baselines()[hive.workers[2]][1]
    expected: dict[int, dict] = {}
    p = close_and_expect(hive, meters, expected, imp=(12, 34), exp=(56, 78))
    wait_for(lambda: hive.next_period() > p, 30, "the period settled")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the outbox to follow")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)


def _metrics(port: int) -> dict[str, float]:
    import requests

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


def _health(port: int) -> dict:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except requests.RequestException:
        return {"chain_time": 0, "problems": [], "status": "down"}


def _cli(*args) -> tuple[int, str]:
    """`oracle ARGS`: (exit status, stdout, else stderr, stripped)."""
    done = subprocess.run(
        [sys.executable, "-m", "oracle", *map(str, args)], capture_output=True, text=True
    )
    return done.returncode, (done.stdout or done.stderr).strip()


def test_a_key_that_is_not_the_queen_is_one_line_and_exit_1(tmp_path, chain, rig):
    other = make_unit(rig.w3, tmp_path)
    setup, hive, _ = make_setup(tmp_path, chain, rig, queen_key=other)
    proc = QueenProcess(setup.write(), tmp_path / "queen.log").start()
    assert proc.wait() == 1
    lines = [line for line in proc.log_text().splitlines() if line.strip()]
    assert lines == [
        f"Error: {setup.key.address} is not the queen of hive {hive.id} (the market's queen "
        f"is {other.address}): run with the queen's keystore, or the hive owner calls set_queen"
    ], lines


def test_the_queen_replaced_while_running_stops_with_the_period_kept(tmp_path, chain, rig):
    """The owner hands the hive to another queen; at the next period this one stops with one
    critical line, exit 1, the period pending; given the hive back, it submits it once."""
    setup, hive, meters = make_setup(tmp_path, chain, rig)
    expected: dict[int, dict] = {}
    proc = start(setup, tmp_path)
    pv_first = setup.baselines()[hive.workers[2]][1]
    m = rig.market.functions
    rig.tx(m.set_queen(hive.id, rig.governance), rig.owner)
    p = close_and_expect(hive, meters, expected, imp=(5, 6), exp=(7, 8))
    assert proc.wait(30) == 1
    critical = [
        json.loads(line)
        for line in proc.log_text().splitlines()
        if line.startswith("{") and '"critical"' in line
    ]
    assert [c["msg"] for c in critical] == [
        f"{setup.key.address} is not the queen of hive {hive.id} (the market's queen is "
        f"{rig.governance}): run with the queen's keystore, or the hive owner calls set_queen"
    ]
    assert setup.periods()[p].status == "pending" and hive.settled() == {}

    rig.tx(m.set_queen(hive.id, setup.key.address), rig.owner)
    proc = start(setup, tmp_path, name="queen2.log")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the kept period settled")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)


def test_a_batch_signed_elsewhere_with_the_queens_key_is_reported(tmp_path, chain, rig):
    """Another process with the queen's key settles the first worker of a recorded period
    (other numbers): the queen sends only the rest, adopts the other batch, reports the
    differing numbers in an error line, a metric and /health, and records the chain's."""
    setup, hive, meters = make_setup(tmp_path, chain, rig, batch_size=3)
    port = free_port()
    setup.service.update(http_enabled=True, http_port=port)
    proc = start(setup, tmp_path, crash="after_record:1")
    p = close_and_expect(hive, meters, {}, imp=(40, 0), exp=(0, 50))
    assert proc.wait() == -signal.SIGKILL
    w3 = rig.w3
    other = w3.eth.account.from_key(setup.key.key)
    # The house as 30 Wh instead of 40, the period's totals declared to match.
    recorded = setup.periods()[p]
    index = rig.market.functions.worker(hive.workers[0]).call()[6]
    entry = (30 << 160) | index
    totals = (recorded.production, recorded.consumption - 10)
    tx = rig.market.functions.submit(hive.id, p, *totals, [entry]).build_transaction(
        {"from": other.address, "nonce": w3.eth.get_transaction_count(other.address)}
    )
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(other.sign_transaction(tx).raw_transaction)
    )
    proc = start(setup, tmp_path, name="queen2.log")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the period settled")
    health = _health(port)
    assert health["status"] == "degraded"
    metrics = _metrics(port)
    assert metrics["queen_foreign_periods_total"] == 1
    assert metrics["queen_chain_mismatch_periods_total"] == 1
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    errors = [json.loads(x) for x in proc.log_text().splitlines() if '"level": "error"' in x]
    message = (
        f"period {p} of hive {hive.id}: the chain settled other numbers than this outbox "
        f"recorded for 1 of its 3 workers ({hive.workers[0]}: chain 0/30 Wh, outbox 0/40 Wh); "
        "the chain's are recorded: another queen process uses this key (stop it), or the "
        "outbox was restored from an older backup"
    )
    ack = f" (once explained, acknowledge it: oracle queen-ack {p}, with this queen's --config)"
    assert [e["msg"] for e in errors] == [message] and health["problems"] == [message + ack]

    # A restart does not clear it (the outbox keeps it); `queen-ack` beside the running
    # queen does, once, and is kept in the outbox.
    proc = start(setup, tmp_path, name="queen3.log")
    wait_for(lambda: _health(port)["status"] != "down", 30, "the health endpoint")
    assert _health(port)["problems"] == [message + ack]
    config = setup.write()
    assert _cli("queen-ack", "--config", config, str(p)) == (
        0,
        f"period {p}: mismatch acknowledged",
    )
    wait_for(lambda: _health(port)["status"] == "ok", 10, "healthy once acknowledged")
    code, again = _cli("queen-ack", "--config", config, str(p))
    assert code == 0 and again.startswith(f"period {p}: mismatch already acknowledged at ")
    assert _cli("queen-ack", "--config", config, str(p + 5)) == (
        1,
        f"Error: {setup.state_dir / 'queen.sqlite'}: no period {p + 5} in the queen's outbox",
    )
    code, usage = _cli("queen-ack", "--config", config, "-1")  # a usage error: one line
    assert code == 1 and len(usage.splitlines()) == 1 and "queen-ack --help" in usage
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    report = json.loads(_cli("queen-status", "--config", config, "--json")[1])
    assert report["mismatches"] == [] and report["periods"]["settled"] == 1
    settled = hive.settled()[p]
    assert sorted(w for w, _, _ in settled) == sorted(hive.workers)  # each worker once
    assert settled[0] == (hive.workers[0], 0, 30)  # the chain's numbers stand
    recorded = {e.worker: e for e in setup.periods()[p].entries}
    assert (recorded[hive.workers[0]].produced, recorded[hive.workers[0]].consumed) == (0, 30)
    assert [t["status"] for t in setup.txs() if t["period"] == p].count("adopted") == 1


def test_an_owner_deposit_short_is_waited_out(tmp_path, chain, rig):
    """The owner takes its deposit back, so the market cannot pay the period's producers:
    the queen waits (degraded, with the reason) instead of stopping, and submits once the
    owner deposits again."""
    setup, hive, meters = make_setup(tmp_path, chain, rig, batch_size=3)
    port = free_port()
    setup.service.update(http_enabled=True, http_port=port)
    m = rig.market.functions
    rig.tx(m.withdraw_deposit(hive.id, m.deposit_of(hive.id).call()), rig.owner)
    proc = start(setup, tmp_path)
    pv_first = setup.baselines()[hive.workers[2]][1]
    expected: dict[int, dict] = {}
    p = close_and_expect(hive, meters, expected, imp=(40, 0), exp=(0, 500))
    reason = f"period {p}: market: owner deposit short"
    wait_for(lambda: reason in _health(port)["problems"], 30, "the queen to wait")
    assert proc.alive() and hive.next_period() == p
    rig.tx(m.deposit(hive.id, 10**6 * 10**6), rig.owner)
    wait_for(lambda: hive.next_period() > p, 30, "the period settled once funded")
    wait_for(lambda: setup.periods()[p].status == "settled", 30, "the outbox to follow")
    wait_for(lambda: _health(port)["status"] == "ok", 20, "healthy again")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)


def test_a_worker_above_its_rated_maximum_is_one_line_and_exit_1(tmp_path, chain, rig):
    setup, hive, meters = make_setup(tmp_path, chain, rig, max_wh=1000)
    setup.workers[2] = {**setup.workers[2], "options": {**PV["options"], "compression": 1}}
    proc = start(setup, tmp_path)
    meters[0].add(imp=1001)
    p = hive.close_period()
    assert proc.wait(30) == 1
    critical = [line for line in proc.log_text().splitlines() if '"critical"' in line]
    assert len(critical) == 1
    assert json.loads(critical[0])["msg"] == (
        f"period {p}: worker {hive.workers[0]} (house) consumed 1001 Wh, above its rated "
        "maximum of 1000 Wh per period on the market: check the meter, or the hive owner "
        "enrols it with a higher maximum"
    )
    assert setup.periods()[p].status == "pending" and hive.settled() == {}


def test_a_reading_over_several_periods_splits_exactly():
    assert split(10, 3) == [4, 3, 3] and split(2, 4) == [1, 1, 0, 0] and split(0, 2) == [0, 0]
    assert all(sum(split(wh, n)) == wh for wh in (0, 1, 7, 10**9 + 3) for n in (1, 2, 5, 128))


def test_the_same_worker_twice_in_the_config_is_refused(tmp_path):
    worker = {"name": "a", "rated_power_w": 1, "address": "0x" + "11" * 20}
    data = {
        "service": {"state_dir": str(tmp_path)},
        "chain": {
            "rpc_url": "http://127.0.0.1:1",
            "chain_id": 1,
            "deployments_dir": str(tmp_path),
            "keystore": str(tmp_path / "k.json"),
        },
        "queen": {"hive": 1},
        "workers": [worker, {**worker, "name": "b"}],
    }
    with pytest.raises(ConfigError, match="duplicate worker addresses: 0x1111"):
        parse_queen_config(data)


def test_the_example_configuration_parses(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/powerhive-queen")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/powerhive-queen.service")
    config = load_queen_config(REPO / "deploy" / "queen.toml")
    assert config.service.state_dir == Path("/var/lib/powerhive-queen")
    assert config.chain.keystore == Path("/run/credentials/powerhive-queen.service/keystore")
    assert [w.driver for w in config.workers] == ["sdm", "sdm", "shelly", "smartpi"]
    service = (REPO / "deploy" / "powerhive-queen.service").read_text()
    assert "oracle queen --config /etc/powerhive/queen.toml" in service


def test_a_health_port_in_use_is_one_line_and_exit_1(tmp_path, chain, rig):
    setup, _, _ = make_setup(tmp_path, chain, rig)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        setup.service.update(http_enabled=True, http_port=port)
        proc = QueenProcess(setup.write(), tmp_path / "queen.log").start()
        assert proc.wait() == 1
    assert proc.log_text().splitlines() == [
        f"Error: cannot serve health and metrics on 127.0.0.1:{port}: Address already in use"
    ]


def _status(setup, period: int) -> str | None:
    found = setup.periods().get(period)
    return None if found is None else found.status


def _mine(w3, blocks: int) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])


def _queen_export(config: Path, out: Path) -> list[dict]:
    import csv

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "oracle",
            "queen-export",
            "--config",
            str(config),
            "--csv",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        return list(csv.DictReader(f))


def test_a_reorg_that_drops_a_settled_period_sends_it_again(tmp_path, chain, rig):
    """A settled period is final only `confirmations` blocks deep; a reorganisation that drops
    the block of its batch (before that) sends it back to pending and the queen submits it
    again, once. Then `queen-export` has every period and worker with the settling tx, and a
    restart with a short retention deletes the final periods, never the pending one."""
    setup, hive, meters = make_setup(tmp_path, chain, rig, batch_size=3)
    setup.chain["confirmations"] = 2
    w3 = chain.w3()
    expected: dict[int, dict] = {}
    proc = start(setup, tmp_path)
    pv_first = setup.baselines()[hive.workers[2]][1]
    p0 = close_and_expect(hive, meters, expected, imp=(10, 0), exp=(0, 20))
    wait_for(lambda: _status(setup, p0) == "settled", 30, "the first period settled")
    assert p0 not in setup.final()
    report = json.loads(_cli("queen-status", "--config", setup.write(), "--json")[1])
    assert report["periods"] == {"pending": 0, "settled": 1, "final": 0, "not_final": 1}
    _mine(w3, 2)
    wait_for(lambda: p0 in setup.final(), 30, "the first period final")

    p1 = close_and_expect(hive, meters, expected, imp=(30, 0), exp=(0, 40))
    wait_for(lambda: _status(setup, p1) == "settled", 30, "the second period settled")
    [first] = [t for t in setup.txs() if t["period"] == p1]
    # The block of its batch (and any after it) replaced by an empty one.
    _reorg = w3.provider.make_request
    answer = _reorg("anvil_reorg", [w3.eth.block_number - first["block_number"] + 1, []])
    assert "error" not in answer, answer
    assert hive.next_period() == p1
    wait_for(lambda: "a reorganisation dropped" in proc.log_text(), 30, "the reorg noticed")
    wait_for(lambda: _status(setup, p1) == "settled", 30, "the period sent again")
    assert hive.next_period() == p1 + 1
    _mine(w3, 2)
    wait_for(lambda: p1 in setup.final(), 30, "the second period final")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_exactly_once(setup, hive, expected, pv_first)
    code, text = _cli("queen-status", "--config", setup.write())
    assert code == 0 and "0 periods pending, 2 settled (2 final, 0 not final yet)" in text
    # Sent again with the nonce the chain went back to: the same transaction (same hash) when
    # the fees came out the same, else a new one beside the `reorged` one.
    statuses = sorted(t["status"] for t in setup.txs() if t["period"] == p1)
    assert statuses in (["mined"], ["mined", "reorged"]), statuses
    reorgs = [
        json.loads(line)
        for line in proc.log_text().splitlines()
        if "a reorganisation dropped a settled period" in line
    ]
    assert [r["period"] for r in reorgs] == [p1]

    # The export: a row per period and worker, the chain's Wh, the tx that settled it.
    rows = _queen_export(setup.write(), tmp_path / "periods.csv")
    assert len(rows) == 2 * 3
    settled = hive.settled()
    mined = {t["period"]: t["tx_hash"] for t in setup.txs() if t["status"] == "mined"}
    for row in rows:
        period = int(row["period"])
        assert (row["worker"], int(row["produced_wh"]), int(row["consumed_wh"])) in settled[period]
        assert row["tx_hashes"] == mined[period] and row["final"] == "True"
    assert {r["name"] for r in rows} == {"house", "shop", "pv"}

    # Retention: a period that ends while the queen is stopped stays pending (the chain's
    # clock is moved past it but the queen is not running to submit it before the prune).
    setup.service["retain_days"] = 1e-9
    hive.close_period()
    proc = start(setup, tmp_path, name="queen2.log")
    wait_for(lambda: p1 not in setup.periods(), 30, "the final periods pruned")
    assert p0 not in setup.periods()
    wait_for(lambda: setup.periods().get(p1 + 1) is not None, 30, "the new period recorded")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert "settled periods past the retention deleted" in proc.log_text()


def test_an_outbox_restored_from_an_older_backup_takes_the_chains_periods(tmp_path, chain, rig):
    """The outbox is restored from a copy taken two periods ago: the periods the chain already
    has are marked settled from the chain (nothing sent again), the numbers the restored copy
    measured otherwise (one reading split over both) are reported and replaced by the
    chain's; the next period goes out as usual."""
    setup, hive, meters = make_setup(tmp_path, chain, rig, batch_size=3)
    proc = start(setup, tmp_path)
    p0 = close_and_expect(hive, meters, {}, imp=(10, 0), exp=(0, 20))
    wait_for(lambda: _status(setup, p0) == "settled", 30, "period 0 settled")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    backup = tmp_path / "backup"
    shutil.copytree(setup.state_dir, backup)

    proc = start(setup, tmp_path, name="queen2.log")
    p1 = close_and_expect(hive, meters, {}, imp=(100, 0))
    wait_for(lambda: _status(setup, p1) == "settled", 30, "1")
    p2 = close_and_expect(hive, meters, {}, imp=(300, 0))
    wait_for(lambda: _status(setup, p2) == "settled", 30, "2")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    before = hive.settled()
    signed = len(setup.txs())

    shutil.rmtree(setup.state_dir)
    shutil.copytree(backup, setup.state_dir)
    assert signed > len(setup.txs())
    proc = start(setup, tmp_path, name="queen3.log")
    wait_for(lambda: _status(setup, p2) == "settled", 30, "2")
    p3 = close_and_expect(hive, meters, {}, imp=(5, 0), exp=(0, 7))
    wait_for(lambda: _status(setup, p3) == "settled", 30, "3")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0

    after = hive.settled()
    assert {p: after[p] for p in before} == before  # nothing sent again for 0, 1, 2
    assert sorted(w for w, _, _ in after[p3]) == sorted(hive.workers)
    recorded = setup.periods()
    for p in (p1, p2):  # the chain's numbers in the outbox
        assert sorted((e.worker, e.produced, e.consumed) for e in recorded[p].entries) == sorted(
            after[p]
        )
    house = hive.workers[0]
    assert {e.worker: e.consumed for e in recorded[p3].entries}[house] == 5
    errors = [json.loads(x)["msg"] for x in proc.log_text().splitlines() if '"error"' in x]
    assert len(errors) == 2, errors
    assert errors[0].startswith(
        f"period {p1} of hive {hive.id}: the chain settled other numbers than this outbox "
        f"recorded for "
    )
    assert f"{house}: chain 0/100 Wh, outbox 0/200 Wh" in errors[0]
    assert f"{house}: chain 0/300 Wh, outbox 0/200 Wh" in errors[1]
    # The chain's batches this copy did not sign are kept (for the reorg check, the export).
    adopted = {t["period"] for t in setup.txs() if t["status"] == "adopted"}
    assert adopted == {p1, p2}
    rows = _queen_export(setup.write(), tmp_path / "periods.csv")
    row = next(r for r in rows if int(r["period"]) == p1 and r["worker"] == house)
    assert (row["consumed_wh"], row["recorded_consumed_wh"]) == ("100", "200")


def test_a_chain_that_keeps_answering_worker_already_settled(tmp_path):
    """A node whose latest state lags its pending one: `submit` is refused "worker already
    settled" for a worker the latest state shows unsettled. The worker is checked on chain
    (settled in the pending state) and taken as done; the rest is sent once, and nothing is
    sent again while the chain catches up (no loop of refused submissions)."""
    from oracle.chain import Mined, SignedReport
    from oracle.errors import ReportReverted
    from oracle.queen import MarketState, Queen, SettledBatch, _Reconcile, _Wait
    from oracle.queen_store import Entry, Period, QueenStore

    queen_address = "0x" + "99" * 20
    workers = [to_checksum(f"0x{i:040x}") for i in (1, 2, 3)]
    stale = workers[1]

    class LaggingChain:
        unit = queen_address
        market_from_block = 0

        def __init__(self):
            self.settled: dict[str, int] = {stale: -1}
            self.pending: dict[str, int] = {stale: 0}
            self.next_period, self.signed, self.refused = 0, [], 0

        def market_state(self, hive):
            done = sum(1 for w in workers if self.settled.get(w, -1) >= 0)
            return MarketState(0, 60, self.next_period, 3, done, 0 < done < 3, queen_address, 1)

        def worker_state(self, worker, block="latest"):
            table = self.pending if block == "pending" else self.settled
            return 1, max(table.get(worker, -1), self.settled.get(worker, -1)), 10**6

        def sign_submit(self, hive, period, batch):
            if any(self.pending.get(e.worker, -1) >= period.period for e in batch):
                self.refused += 1
                raise ReportReverted("market: worker already settled")
            self.signed.append([e.worker for e in batch])
            return SignedReport(f"0x{len(self.signed):064x}", b"", 0, "submit", 0, len(batch), 1)

        def broadcast(self, signed):
            pass

        def wait_mined(self, signed, give_up=None):
            for w in self.signed[-1]:
                self.settled[w] = self.pending[w] = 0
            return Mined(signed.tx_hash, 1, 50_000, (), "0x" + "ab" * 32)

        def batches(self, hive, period, from_block):
            return [
                SettledBatch(
                    f"0x{i + 1:064x}", 1, "0x" + "ab" * 32, tuple(Entry(w, 1, 2) for w in ws)
                )
                for i, ws in enumerate(self.signed)
            ] + [SettledBatch("0x" + "cd" * 32, 1, "0x" + "ab" * 32, (Entry(stale, 1, 2),))]

    config = parse_queen_config(
        {
            "service": {"state_dir": str(tmp_path), "http_enabled": False},
            "chain": {
                "rpc_url": "http://127.0.0.1:1",
                "chain_id": 1,
                "deployments_dir": str(tmp_path),
                "keystore": str(tmp_path / "k.json"),
            },
            "queen": {"hive": 1, "batch_size": 3},
            "workers": [
                {"name": f"w{i}", "rated_power_w": 1, "address": w} for i, w in enumerate(workers)
            ],
        }
    )
    store = QueenStore(tmp_path / "queen.sqlite")
    store.record([Period(0, tuple(Entry(w, 1, 2) for w in workers))], {}, 1)
    fake = LaggingChain()
    queen = Queen(config, fake, store, {})
    with pytest.raises(_Reconcile):
        queen.deliver(store.oldest_pending())
    assert store.done_workers(0) == {stale}
    assert fake.signed == [[workers[0], workers[2]]] and fake.refused == 1
    for _ in range(3):  # the chain has not caught up: waited, nothing sent or refused again
        with pytest.raises(_Wait):
            queen.deliver(store.oldest_pending())
    assert fake.signed == [[workers[0], workers[2]]] and fake.refused == 1
    fake.settled[stale], fake.next_period = 0, 1  # caught up: the period closed
    queen.deliver(store.oldest_pending())
    assert store.oldest_pending() is None and store.counts()["settled"] == 1
    assert queen.metrics.already_settled._value.get() == 1
    queen.close()


def test_retention_deletes_only_final_settled_periods(tmp_path):
    from oracle.queen_store import Entry, Period, QueenStore

    store = QueenStore(tmp_path / "queen.sqlite")
    entries = (Entry("0x" + "11" * 20, 5, 0),)
    store.record([Period(p, entries) for p in range(4)], {}, 4)
    store.tx_sent("0xaa", 0, 0, 0, 1)
    for p in (0, 1, 2):
        store.mark_settled(p)
    store.mark_final(0)
    store.mark_final(2)
    assert store.prune(time.time() - 3600) == 0  # settled just now: within the retention
    assert store.prune(time.time() + 1) == 2
    assert [(p.period, p.status) for p in store.periods()] == [(1, "settled"), (3, "pending")]
    assert store.txs() == []  # the pruned period's transaction went with it
    store.close()


def test_an_unacknowledged_mismatch_is_kept_by_the_retention(tmp_path):
    """A final period the chain settled with other numbers stays (and keeps /health at 503)
    until `queen-ack`; then the retention deletes it like any other; the counts say which
    settled periods are final."""
    from oracle.errors import StateError
    from oracle.queen_store import Entry, Period, QueenStore

    store = QueenStore(tmp_path / "queen.sqlite")
    worker = "0x" + "11" * 20
    store.record([Period(p, (Entry(worker, 5, 0),)) for p in range(3)], {}, 3)
    store.mark_settled(0, (Entry(worker, 4, 0),), "period 0: the chain settled other numbers")
    store.mark_settled(1)
    store.mark_final(0)
    assert store.counts() == {"pending": 1, "settled": 2, "final": 1, "not_final": 1}
    assert store.mismatches() == [(0, "period 0: the chain settled other numbers")]
    assert store.prune(time.time() + 1) == 0
    with pytest.raises(StateError, match="period 1: the chain settled the numbers the outbox"):
        store.acknowledge(1)
    assert store.acknowledge(0) is None and store.mismatches() == []
    assert store.acknowledge(0) is not None  # when it was acknowledged
    assert store.prune(time.time() + 1) == 1
    assert [p.period for p in store.periods()] == [1, 2]
    store.close()
