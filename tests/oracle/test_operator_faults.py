"""Operator mistakes, disk faults and a chain that rolls back (issue 10), end to end.

Each test runs the real `oracle run` against its own Anvil and ends with the ledger's totals
equal to the meters', to the Wh.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.oracle import test_faults
from tests.oracle.rig import (
    PASSPHRASE,
    REAL_LEDGER,
    REPO,
    Counters,
    OracleProcess,
    OracleSetup,
    depth,
    free_port,
    wait_for,
)
from tests.oracle.test_faults import (
    Bumper,
    assert_exact,
    last_reading,
    outbox_totals,
    readings,
    settle,
    start_after_baseline,
)

# The same fixtures as test_faults: a chain of the test's own (persisted to a state file so it
# survives restarts) and a registered unit with one inverter meter, producer and consumer.
chain, site = test_faults.chain, test_faults.site


def backup(setup: OracleSetup, to) -> None:
    """A consistent copy of the live outbox (SQLite's online backup), as an operator's
    nightly backup would be."""
    src = sqlite3.connect(setup.state_dir / "outbox.sqlite")
    dst = sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def restore(setup: OracleSetup, copy) -> None:
    for suffix in ("-wal", "-shm"):
        (setup.state_dir / f"outbox.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, setup.state_dir / "outbox.sqlite")


def oracle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oracle", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE},
    )


def run_to_end(setup, counters, log) -> None:
    proc = start_after_baseline(setup, log)
    settle(setup, counters, proc)


def test_a_deleted_lock_file_does_not_let_a_second_instance_in(site, tmp_path):
    """Finding 5: the lock is on the state directory, not on `oracle.lock`."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        (setup.state_dir / "oracle.lock").unlink()
        second = OracleProcess(setup.write(), tmp_path / "second.log").start()
        assert second.wait(60) == 1
        text = second.log_text()
        assert "another oracle is running with state_dir" in text
        assert "Traceback" not in text
        wait_for(lambda: readings(setup) >= 10, 60, "readings")
    settle(setup, counters, proc)
    assert_exact(setup, ledger, counters, start, producer, consumer)


def test_one_key_in_two_state_dirs_stops_and_recovers_exactly(site, tmp_path, chain):
    """Finding 3: two services share a unit key. Neither takes the other's transaction for
    its own; the one that sees the other stops with one line; after the other is stopped and
    `oracle accept-chain`, each delivers the rest and the ledger equals both meters."""
    a, ledger, counters_a, producer_a, consumer_a = site
    w3 = chain.w3()
    producer_b, consumer_b = w3.eth.accounts[3], w3.eth.accounts[4]
    ledger.open_session(consumer_b, a.unit.address)
    (tmp_path / "b").mkdir()
    b = OracleSetup(tmp_path / "b", a.rpc_url, a.deployments_dir, a.unit)
    counters_b = Counters(tmp_path, "meter-b")
    b.meters = [counters_b.meter("inverter", rated_power_w=10_000_000, stored=False)]
    b.channels = [
        {"meter": "inverter", "counter": "export", "kind": "produced", "account": producer_b},
        {"meter": "inverter", "counter": "import", "kind": "consumed", "account": consumer_b},
    ]
    b.service["period_s"] = 0.1
    start_a, start_b = (counters_a.imp, counters_a.exp), (counters_b.imp, counters_b.exp)
    proc_a = start_after_baseline(a, tmp_path / "a.log")
    proc_b = start_after_baseline(b, tmp_path / "b.log")
    with Bumper(counters_a), Bumper(counters_b, every=0.04):
        wait_for(lambda: not proc_a.alive() or not proc_b.alive(), 60, "a writer to stop")
    for proc in (proc_a, proc_b):
        proc.signal(signal.SIGTERM)
    codes = [proc_a.wait(30), proc_b.wait(30)]
    logs = [proc_a.log_text(), proc_b.log_text()]
    assert 1 in codes, logs
    stopped = logs[codes.index(1)]
    assert "another writer reports for unit" in stopped and "Traceback" not in stopped
    # Whatever each outbox calls confirmed is on chain in its own transactions.
    on_chain = ledger.totals(a.unit.address)
    boxes = {}
    for setup in (a, b):
        box = setup.outbox()
        boxes.update(box.totals())
        box.close()
    assert on_chain == boxes
    # The operator's recovery: one writer at a time, each after `oracle accept-chain`.
    for setup, counters in ((a, counters_a), (b, counters_b)):
        done = oracle("accept-chain", "--config", str(setup.write()))
        assert done.returncode == 0, done.stderr
        run_to_end(setup, counters, setup.root / "recovery.log")
    expected = {
        ("produced", producer_a): counters_a.exp - start_a[1],
        ("consumed", consumer_a): counters_a.imp - start_a[0],
        ("produced", producer_b): counters_b.exp - start_b[1],
        ("consumed", consumer_b): counters_b.imp - start_b[0],
    }
    assert ledger.totals(a.unit.address) == {k: v for k, v in expected.items() if v}


def test_a_restored_older_outbox_adopts_what_the_chain_holds(site, tmp_path, chain):
    """Finding 4: the state dir is restored from a backup taken while reports were pending;
    they went out later. The restart adopts them (and the energy of the readings the backup
    lacks) instead of sending it again."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        chain.stop()  # reports pile up, so the backup holds pending ones
        wait_for(lambda: depth(setup) >= 4, 60, "pending reports")
        backup(setup, tmp_path / "backup.sqlite")
        chain.start()
        wait_for(lambda: depth(setup) == 0, 60, "the backlog to drain")
        count = readings(setup)
        wait_for(lambda: readings(setup) >= count + 5, 60, "readings after the backup")
    settle(setup, counters, proc)
    restore(setup, tmp_path / "backup.sqlite")
    run_to_end(setup, counters, log)
    text = log.read_text()
    assert "ledger held reports this outbox did not know" in text
    assert_exact(setup, ledger, counters, start, producer, consumer)
    box = setup.outbox()
    try:  # adopted and reconciled reports carry their block and gas (finding 13)
        txs = box.table("txs")
        assert any(tx["method"] == "adopted" for tx in txs)
        assert all(tx["block_number"] and tx["gas_used"] for tx in txs if tx["status"] == "mined")
    finally:
        box.close()


def test_a_truncated_outbox_is_refused_then_its_backup_restored(site, tmp_path):
    """Finding 6: an empty outbox in an initialised state dir is an error, not a fresh start;
    restoring the backup then loses nothing and counts nothing twice."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: readings(setup) >= 5, 60, "readings")
        backup(setup, tmp_path / "backup.sqlite")
        count = readings(setup)
        wait_for(lambda: readings(setup) >= count + 5, 60, "readings after the backup")
        proc.kill()
    (setup.state_dir / "outbox.sqlite").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (setup.state_dir / f"outbox.sqlite{suffix}").unlink(missing_ok=True)
    refused = oracle("run", "--config", str(setup.write()))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "is missing or empty but" in lines[0], refused.stderr
    restore(setup, tmp_path / "backup.sqlite")
    run_to_end(setup, counters, log)
    assert_exact(setup, ledger, counters, start, producer, consumer)


def test_a_reorg_returns_the_lost_reports_to_pending(site, tmp_path, chain):
    """Finding 7: `anvil_reorg` drops the last blocks (fewer than `chain.confirmations`);
    the reports they held are sent again."""
    setup, ledger, counters, producer, consumer = site
    setup.chain["confirmations"] = 5
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    w3 = chain.w3()
    with Bumper(counters):
        wait_for(lambda: ledger.last_seq(setup.unit.address) >= 10, 60, "reports on chain")
    # The service has read the final counters and delivered everything (draining alone is not
    # enough: under load a last reading can still be recorded and sent after it).
    wait_for(
        lambda: last_reading(setup) == (counters.imp, counters.exp) and depth(setup) == 0,
        60,
        "the outbox to drain",
    )
    before = ledger.last_seq(setup.unit.address)
    result = w3.provider.make_request("anvil_reorg", [2, []])
    assert "error" not in result, result
    assert ledger.last_seq(setup.unit.address) < before
    counters.add(imp=1, exp=1)
    settle(setup, counters, proc)
    assert "the chain lost confirmed reports" in log.read_text()
    assert_exact(setup, ledger, counters, start, producer, consumer)


def test_a_chain_restarted_from_an_older_state_gets_the_lost_reports_again(site, tmp_path, chain):
    """Finding 7: the node comes back from an older `--state` dump; the running service sends
    the reports the chain lost again."""
    setup, ledger, counters, producer, consumer = site
    setup.chain["confirmations"] = 10_000
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: ledger.last_seq(setup.unit.address) >= 4, 60, "reports on chain")
        chain.stop()
        old = tmp_path / "old-state.json"
        shutil.copy(chain.state, old)
        chain.start()
        seq = ledger.last_seq(setup.unit.address)
        wait_for(lambda: ledger.last_seq(setup.unit.address) >= seq + 4, 60, "more reports")
        chain.stop()
        shutil.copy(old, chain.state)
        chain.start()
    settle(setup, counters, proc)
    assert "the chain lost confirmed reports" in log.read_text()
    assert_exact(setup, ledger, counters, start, producer, consumer)


def last_row(setup: OracleSetup):
    try:
        box = setup.outbox()
    except Exception:
        return None
    try:
        rows = box.table("readings")
        return rows[-1] if rows else None
    finally:
        box.close()


def test_a_glitch_back_and_a_spike_count_once_and_a_reset_rebaselines(site, tmp_path):
    """Finding 2, with the SmartPi driver's decimal counter files: export 2125 -> 2095 ->
    2130 is 5 Wh, a 5e15 spike is skipped without losing the next interval, and a reset to
    near zero starts a new baseline."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    counters.set(1000, 2000)
    proc = start_after_baseline(setup, log)
    for exp in (2125, 2095, 2130, 5 * 10**15, 2140, 3, 10):
        counters.set(1000, exp)
        wait_for(
            lambda e=exp: (row := last_row(setup)) is not None and row["export_wh"] == e,
            60,
            f"a reading of {exp}",
        )
    settle(setup, counters, proc)
    text = log.read_text()
    assert '"anomaly": "glitch"' in text and '"anomaly": "implausible"' in text
    assert '"anomaly": "reset"' in text
    expected = {("produced", producer): (2140 - 2000) + (10 - 3)}
    assert ledger.totals(setup.unit.address) == expected
    box = setup.outbox()
    try:
        assert box.totals() == expected
    finally:
        box.close()


def test_a_reboot_with_the_clock_behind_reports_the_energy_later(site, tmp_path):
    """Finding 1: the previous baseline is from another boot and its time is ahead of the
    wall clock now (a Pi without RTC booted with the clock behind). The rise is held, not
    dropped, and reported once the clock has passed the baseline's time."""
    setup, ledger, counters, producer, consumer = site
    setup.meters[0]["rated_power_w"] = 360_000.0  # 100 Wh a second
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    proc.signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    counters.add(exp=100, imp=40)
    # The meter is unreadable until the new process runs: its first reading then comes a
    # period after the baseline is moved ahead of the clock, however slow the start was.
    hidden = counters.dir.with_name(counters.dir.name + ".unplugged")
    counters.dir.rename(hidden)
    proc = OracleProcess(setup.write(), log).start()
    wait_for(lambda: "meter read failed" in log.read_text() or not proc.alive(), 60, "a start")
    assert proc.alive(), proc.log_text()[-2000:]
    db = sqlite3.connect(setup.state_dir / "outbox.sqlite", timeout=30)
    with db:
        db.execute(
            "UPDATE meter_state SET clock = 'boot:previous', monotonic = 1e6, ts = ?",
            (time.time() + 5,),
        )
    db.close()
    hidden.rename(counters.dir)
    # Held at first (the clock is behind the baseline), then reported, all of it.
    expected = {("produced", producer): 100, ("consumed", consumer): 40}
    wait_for(lambda: outbox_totals(setup) == expected, 60, "the held energy to be reported")
    settle(setup, counters, proc)
    assert "across a restart; the interval counts as 0 s" in log.read_text()
    assert_exact(setup, ledger, counters, start, producer, consumer)


def test_a_wrong_chain_id_typed_while_the_chain_is_down_binds_nothing(site, tmp_path, chain):
    """Finding 8: `chain_id = 1` while the node is down (a deployments file for chain 1 is
    there too): the service reads meters, refuses once the chain answers, and after the fix
    delivers everything it read."""
    setup, ledger, counters, producer, consumer = site
    data = json.loads((setup.deployments_dir / "31337.json").read_text())
    data["chain_id"] = 1
    (setup.deployments_dir / "1.json").write_text(json.dumps(data))
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    chain.stop()
    setup.chain["chain_id"] = 1
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        count = readings(setup)
        wait_for(lambda: readings(setup) >= count + 5, 60, "readings while the chain is down")
        chain.start()
        assert proc.wait(60) == 1
    assert "serves chain 31337, not 1" in proc.log_text()
    setup.chain["chain_id"] = 31337
    run_to_end(setup, counters, log)
    assert_exact(setup, ledger, counters, start, producer, consumer)


def test_oracle_rebind_moves_the_readings_of_a_wrongly_bound_dir(site, tmp_path, chain):
    """A state dir an older oracle bound to chain 1 while the chain was down, holding only
    pending reports: `oracle rebind` releases it and the next run delivers them."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    chain.stop()
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: depth(setup) >= 3, 60, "pending reports")
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    db = sqlite3.connect(setup.state_dir / "outbox.sqlite")
    with db:
        db.execute("INSERT INTO meta (key, value) VALUES ('chain_id', '1')")
    db.close()
    chain.start()
    refused = oracle("run", "--config", str(setup.write()))
    assert refused.returncode == 1 and "belongs to chain_id 1" in refused.stderr
    done = oracle("rebind", "--config", str(setup.write()))
    assert done.returncode == 0, done.stderr
    run_to_end(setup, counters, log)
    assert_exact(setup, ledger, counters, start, producer, consumer)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_sigkill_during_key_decryption_kills_the_decrypting_child(site, tmp_path):
    """Finding 12: the keystore's KDF runs in a child; SIGKILL of the service takes it too."""
    from eth_account import Account

    setup, *_ = site
    strong = tmp_path / "strong.json"
    # The `ape accounts` strength: scrypt N = 2**18, 256 MiB and seconds of work.
    strong.write_text(json.dumps(Account.encrypt(setup.unit.key, PASSPHRASE, kdf="scrypt")))
    setup.chain["keystore"] = str(strong)
    proc = OracleProcess(setup.write(), tmp_path / "oracle.log").start()
    child = wait_for(lambda: children(proc.proc.pid) or not proc.alive(), 60, "the child")
    assert proc.alive(), proc.log_text()
    [pid] = child
    proc.kill()
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the child to die")


def test_retention_prunes_final_rows_and_keeps_the_sums(site, tmp_path):
    """Finding 13: confirmed, final reports older than `service.retain_s` are pruned (their
    sums kept, pending ones never); reconciled reports carry their block and gas."""
    setup, ledger, counters, producer, consumer = site
    setup.service["retain_s"] = 0.5
    setup.chain["confirmations"] = 0
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: "outbox pruned" in log.read_text(), 60, "a pruning")
        count = readings(setup)
        wait_for(lambda: readings(setup) >= count + 5, 60, "more readings")
    settle(setup, counters, proc)
    box = setup.outbox()
    try:
        pruned = box._query("SELECT SUM(count) FROM pruned")[0][0]
        assert pruned and pruned > 0
        assert box.count("reports") + pruned > box.count("reports") > 0
        assert all(tx["block_number"] is not None for tx in box.table("txs"))
    finally:
        box.close()
    assert_exact(setup, ledger, counters, start, producer, consumer)


class HangingProxy:
    """JSON-RPC forwarded to Anvil; while `hang` is set, requests get no answer at all."""

    def __init__(self, upstream: str):
        import requests

        self.hang = threading.Event()
        self.released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                while proxy.hang.is_set():
                    proxy.released.wait(0.05)
                answer = requests.post(
                    upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hang.clear()
        self.server.shutdown()


def test_a_hung_node_shows_on_health_within_a_period(site, tmp_path, chain):
    """Finding 9: the node accepts connections and never answers; with a 10 s RPC timeout
    and retries, /health must still turn 503 within about a period."""
    from tests.oracle.test_faults import http_get

    setup, ledger, counters, producer, consumer = site
    proxy = HangingProxy(chain.url)
    try:
        setup.rpc_url = proxy.url
        port = free_port()
        setup.service.update(http_enabled=True, http_port=port, period_s=0.2)
        setup.chain.update(rpc_timeout_s=10.0, rpc_retries=2)
        log = tmp_path / "oracle.log"
        start = (counters.imp, counters.exp)
        proc = start_after_baseline(setup, log)
        with Bumper(counters):
            wait_for(lambda: http_get(port, "/health")[0] == 200, 30, "a healthy service")
            proxy.hang.set()
            hung_at = time.monotonic()
            wait_for(lambda: http_get(port, "/health")[0] == 503, 8, "health to show the hang")
            assert time.monotonic() - hung_at < 8
            status, body = http_get(port, "/health")
            assert "has not answered for" in body, body
            proxy.hang.clear()
            wait_for(lambda: http_get(port, "/health")[0] == 200, 30, "health to recover")
        settle(setup, counters, proc)
        assert_exact(setup, ledger, counters, start, producer, consumer)
    finally:
        proxy.close()


def test_an_unfunded_unit_key_is_one_clear_line_until_it_is_funded(site, tmp_path, chain):
    """Finding 10: a unit key with no gas money. /health and the log say so in one line
    (no traceback on every retry); once funded, everything measured meanwhile is delivered."""
    from tests.oracle.test_faults import http_get

    setup, ledger, counters, producer, consumer = site
    w3 = chain.w3()
    assert "error" not in w3.provider.make_request("anvil_setBalance", [setup.unit.address, "0x0"])
    port = free_port()
    setup.service.update(http_enabled=True, http_port=port)
    setup.chain.update(retry_max_s=0.5)
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    counters.add(imp=3, exp=7)
    wait_for(lambda: log.read_text().count("has no funds for gas") >= 3, 60, "retries to be logged")
    status, body = http_get(port, "/health")
    assert status == 503
    problems = json.loads(body)["problems"]
    assert any(
        f"unit {setup.unit.address} has no funds for gas" in p and "fund it" in p for p in problems
    ), problems
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "sender failed" not in text
    assert ledger.last_seq(setup.unit.address) == 0
    assert "error" not in w3.provider.make_request(
        "anvil_setBalance", [setup.unit.address, hex(10**20)]
    )
    counters.add(imp=1, exp=2)
    wait_for(lambda: http_get(port, "/health")[0] == 200, 60, "health to recover")
    settle(setup, counters, proc)
    assert_exact(setup, ledger, counters, start, producer, consumer)


@pytest.mark.skipif(not REAL_LEDGER, reason="the per-unit maximum is the real ledger's")
def test_a_report_above_the_units_maximum_is_split_not_stuck(site, tmp_path):
    """A reading larger than the unit's `max_report_wh` (a long outage of the meter, a cap
    governance lowered while the service runs) goes out in pieces the ledger accepts; the
    reports behind it are not held back and the totals are exact."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    ledger.set_max_report(setup.unit.address, 50)  # lowered while running: refused, then split
    counters.add(exp=180, imp=120)
    wait_for(lambda: depth(setup) == 0 and ledger.last_seq(setup.unit.address) >= 5, 60, "pieces")
    with Bumper(counters):
        wait_for(lambda: readings(setup) >= 20, 60, "more readings")
    counters.add(exp=51)
    settle(setup, counters, proc)
    assert_exact(setup, ledger, counters, start, producer, consumer)
    text = log.read_text()
    assert "splitting it" in text
    assert "Traceback" not in text
    box = setup.outbox()
    try:
        assert max(r["wh"] for r in box.table("reports")) <= 50
        assert box.counts()["rejected"] == 0
    finally:
        box.close()


def _file_size_limit(limit: int):
    """In the child before exec: files may not grow beyond `limit` bytes (the kernel's
    RLIMIT_FSIZE, a full disk as the process sees it: writes fail with EFBIG)."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_a_full_disk_at_start_is_one_line(site):
    """Finding 10: no room for the outbox at the first start: one line, exit 1."""
    setup, *_ = site
    proc = subprocess.run(
        [sys.executable, "-m", "oracle", "run", "--config", str(setup.write())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE},
        preexec_fn=_file_size_limit(0),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "full" in lines[0], lines[0]


def test_a_disk_that_fills_up_and_frees_loses_nothing(site, tmp_path):
    """The disk fills while the service runs: readings fail to be recorded (logged, no
    crash), and once there is room again the energy of the whole gap is reported once."""
    import resource

    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    proc.signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    # Every file the service writes counts: the outbox, its WAL, and the log (its stdout).
    files = [p for p in setup.state_dir.iterdir() if p.is_file()] + [log]
    size = max(p.stat().st_size for p in files)
    proc = OracleProcess(setup.write(), log)
    proc.preexec_fn = _file_size_limit(size + 64 * 1024)
    proc.start()
    with Bumper(counters):
        wait_for(lambda: "recording failed" in log.read_text() or not proc.alive(), 90, "full")
    assert proc.alive(), proc.log_text()[-3000:]
    counters.add(imp=11, exp=13)
    resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    settle(setup, counters, proc)
    assert "Traceback" not in log.read_text()
    assert_exact(setup, ledger, counters, start, producer, consumer)


def _run_with_read_only(directory: Path, config: Path) -> subprocess.CompletedProcess:
    """`oracle run` in a mount namespace of its own where `directory` is a read-only bind
    mount (a Pi whose SD card went read-only, an operator's `ro` mount)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(directory),
            sys.executable,
            "-m",
            "oracle",
            "run",
            "--config",
            str(config),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE},
    )


@pytest.mark.parametrize("state", ["new", "existing"])
def test_a_state_dir_on_a_read_only_mount_is_one_line(site, tmp_path, state):
    """Finding 10: the state dir (new: its parent; existing: itself) is on a read-only
    mount: one line, exit 1, and an existing outbox is left as it was."""
    setup, ledger, counters, producer, consumer = site
    if state == "existing":
        proc = start_after_baseline(setup, tmp_path / "oracle.log")
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        before = {p.name: p.read_bytes() for p in setup.state_dir.iterdir() if p.is_file()}
        mount = setup.state_dir
    else:
        mount = setup.state_dir.parent / "ro"
        mount.mkdir()
        setup.service["state_dir"] = str(mount / "state")
    result = _run_with_read_only(mount, setup.write())
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Read-only file system" in lines[0] and "read-only or full" in lines[0], lines[0]
    if state == "existing":
        after = {p.name: p.read_bytes() for p in setup.state_dir.iterdir() if p.is_file()}
        assert after == before


def test_a_deleted_wal_adopts_what_the_chain_holds(site, tmp_path):
    """Finding 4: SIGKILL, then `outbox.sqlite-wal` is deleted (an operator "cleaning up",
    a copy of the main file alone): the commits only the WAL held are gone, among them
    reports already on chain. The restart adopts them; nothing is sent twice or lost."""
    setup, ledger, counters, producer, consumer = site
    log = tmp_path / "oracle.log"
    start = (counters.imp, counters.exp)
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: ledger.last_seq(setup.unit.address) >= 4, 60, "reports on chain")
    proc.signal(signal.SIGTERM)  # a clean stop checkpoints the WAL into the main file
    assert proc.wait(30) == 0
    proc = start_after_baseline(setup, log)
    with Bumper(counters):
        wait_for(lambda: ledger.last_seq(setup.unit.address) >= 12, 60, "more on chain")
        proc.kill()  # what this run recorded is in the WAL only
    with_wal = readings(setup)
    wal = setup.state_dir / "outbox.sqlite-wal"
    assert wal.stat().st_size > 0
    wal.unlink()
    (setup.state_dir / "outbox.sqlite-shm").unlink(missing_ok=True)
    without = readings(setup)
    assert without < with_wal, (without, with_wal)
    run_to_end(setup, counters, log)
    assert "ledger held reports this outbox did not know" in log.read_text()
    assert_exact(setup, ledger, counters, start, producer, consumer)
