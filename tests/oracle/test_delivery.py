"""Outbox to ledger, in process, step by step: batching, reconciliation, refusals, PoA.

Each test drives one service's `read_once()` / `deliver_once()` by hand against the module's
Anvil, with meters that are counter files the test writes.
"""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account

from oracle.chain import ChainClient
from oracle.config import load_config
from oracle.errors import StateError, UnitNotRegistered
from oracle.service import Service, open_service
from tests.oracle.rig import PASSPHRASE, OracleSetup, make_unit
from tests.oracle.rpc_proxy import RpcProxy

ACTUAL = {"meter": "inverter", "counter": "stored", "kind": "actual", "min_interval_s": 0}


def start(setup: OracleSetup) -> Service:
    return open_service(load_config(setup.write()), passphrase=PASSPHRASE)


def drain(service: Service, limit: int = 50) -> int:
    sent = 0
    while service.deliver_once():
        sent += 1
        assert sent < limit
    return sent


def test_readings_become_batched_reports_with_exact_totals(
    site, counters, ledger, producer, consumer
):
    site.channels.append(ACTUAL)
    service = start(site)
    service.read_once()  # baseline
    for i in range(10):
        counters.add(imp=3 + i, exp=100 + i, stored=5000 + i)
        service.read_once()
    assert service.outbox.depth() == 31  # 10 produced, 10 consumed, 11 actual
    assert drain(service) == 1  # one report_batch
    unit = site.unit.address
    expected = {("produced", producer): 1045, ("consumed", consumer): 75, ("actual", None): 5009}
    assert service.outbox.totals() == expected
    assert ledger.totals(unit) == expected
    assert ledger.transaction_totals(unit) == expected
    assert ledger.last_seq(unit) == 31
    [tx] = service.outbox.table("txs")
    assert (tx["method"], tx["first_seq"], tx["count"], tx["status"]) == (
        "report_batch",
        1,
        31,
        "mined",
    )
    service.close()


def test_batches_hold_at_most_64_reports(site, counters, ledger):
    site.chain["batch_size"] = 64
    service = start(site)
    service.read_once()
    for _ in range(40):
        counters.add(imp=1, exp=1)
        service.read_once()
    assert drain(service) == 2
    assert [tx["count"] for tx in service.outbox.table("txs")] == [64, 16]
    assert ledger.last_seq(site.unit.address) == 80
    service.close()


def test_mined_but_not_recorded_is_never_sent_twice(site, counters, ledger, producer):
    """The crash window: the transaction is mined, the outbox still says `sending`."""
    service = start(site)
    service.read_once()
    counters.add(exp=500)
    service.read_once()
    service.reconcile()
    batch = service.outbox.assign(service._next_seq, 64)
    signed = service.chain.sign(batch)
    service.outbox.record_tx(batch, signed.tx_hash, signed.nonce, signed.method)
    service.chain.broadcast(signed)  # ... and the process dies here
    service.close()

    restarted = start(site)
    assert restarted.outbox.counts()["sending"] == 1
    assert drain(restarted) == 0  # reconciliation finds it on chain; nothing is resent
    assert restarted.outbox.counts() == {"pending": 0, "sending": 0, "confirmed": 1, "rejected": 0}
    assert ledger.totals(site.unit.address)[("produced", producer)] == 500
    assert len(restarted.outbox.table("txs")) == 1
    restarted.close()


def test_numbered_but_never_broadcast_is_sent_once(site, counters, ledger, producer):
    service = start(site)
    service.read_once()
    counters.add(exp=40)
    service.read_once()
    service.reconcile()
    service.outbox.assign(service._next_seq, 64)  # numbers committed, then the crash
    service.close()

    restarted = start(site)
    assert drain(restarted) == 1
    assert ledger.totals(site.unit.address)[("produced", producer)] == 40
    # A lone report goes out with the single-report function.
    assert [tx["method"] for tx in restarted.outbox.table("txs")] == ["energy_produced"]
    restarted.close()


def test_a_resent_report_is_refused_by_sequence_and_reconciled(site, counters, ledger, producer):
    """A report whose receipt was lost (a timeout) is sent again with the same number: the
    ledger refuses the copy ("ledger: bad sequence") and the oracle reconciles."""
    service = start(site)
    service.read_once()
    counters.add(exp=25)
    service.read_once()
    service.reconcile()
    batch = service.outbox.assign(service._next_seq, 64)
    first = service.chain.sign(batch)
    service.outbox.record_tx(batch, first.tx_hash, first.nonce, first.method)
    service.chain.broadcast(first)
    service.chain.wait_mined(first)
    # The receipt never reached the outbox: the report is still `sending`; send it again.
    assert service.deliver_once() is True
    assert service.outbox.counts()["confirmed"] == 1
    assert ledger.totals(site.unit.address) == {("produced", producer): 25}
    assert ledger.last_seq(site.unit.address) == 1
    service.close()


def test_inactive_unit_keeps_reports_until_reactivated(site, counters, ledger, producer):
    service = start(site)
    service.read_once()
    counters.add(exp=10)
    service.read_once()
    ledger.deactivate(site.unit.address)
    with pytest.raises(UnitNotRegistered, match="not active"):
        service.deliver_once()
    assert service.outbox.counts()["pending"] == 1
    ledger.register(site.unit.address)
    assert drain(service) == 1
    assert ledger.totals(site.unit.address) == {("produced", producer): 10}
    service.close()


def test_another_writer_for_the_unit_stops_the_service(
    site, counters, ledger, producer, w3, tmp_path
):
    """Someone else used the unit's key (seq 1): the oracle's seq 1 is refused, and the
    report is not taken as confirmed by the other's transaction (finding 3): the service
    stops with one line; after `oracle accept-chain` it delivers the report as seq 2."""
    from click.testing import CliRunner

    from oracle.cli import main

    service = start(site)
    service.read_once()
    counters.add(exp=5)
    service.read_once()
    other = ChainClient(
        rpc_url=site.rpc_url,
        account=Account.from_key(site.unit.key),
        unit=site.unit.address,
        ledger_address=ledger.address,
        ledger_abi=ledger.abi,
    )
    service.reconcile()
    from oracle.outbox import Report

    foreign = Report(0, "x", "produced", producer, 1000, 1, "sending")
    signed = other.sign([foreign])
    other.broadcast(signed)
    other.wait_mined(signed)
    with pytest.raises(StateError, match="another writer reports for unit"):
        drain(service)
    assert service.outbox.counts()["confirmed"] == 0
    assert service.outbox.depth() == 1
    service.close()
    again = start(site)
    with pytest.raises(StateError, match="another writer"):
        again.reconcile()  # sticky until the operator acts
    again.close()
    result = CliRunner().invoke(main, ["accept-chain", "--config", str(site.write())])
    assert result.exit_code == 0, result.output
    service = start(site)
    drain(service)
    assert ledger.last_seq(site.unit.address) == 2
    assert ledger.totals(site.unit.address) == {("produced", producer): 1005}
    assert service.outbox.totals() == {("produced", producer): 5}
    assert service.outbox.max_seq() == 2
    service.close()


def test_chain_behind_the_outbox_resends_what_it_lost(site, counters, ledger, producer, w3):
    """The chain forgets a confirmed, not yet final report (finding 7): it is pending again
    and sent again; the ledger ends equal to the meter."""
    service = start(site)
    service.read_once()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    counters.add(exp=5)
    service.read_once()
    drain(service)
    w3.provider.make_request("evm_revert", [snapshot])  # the chain forgets the report
    assert ledger.last_seq(site.unit.address) == 0
    service.reconcile()
    assert service.outbox.depth() == 1
    drain(service)
    assert ledger.totals(site.unit.address) == {("produced", producer): 5}
    assert service.outbox.totals() == {("produced", producer): 5}
    service.close()


def test_chain_behind_a_final_report_is_fatal(site, counters, w3):
    site.chain["confirmations"] = 0
    service = start(site)
    service.read_once()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    counters.add(exp=5)
    service.read_once()
    drain(service)
    w3.provider.make_request("evm_revert", [snapshot])
    with pytest.raises(StateError, match="behind the outbox's final seq 1"):
        service.reconcile()
    service.close()


def test_state_dir_is_bound_to_its_unit(site, w3, tmp_path, ledger):
    service = start(site)
    service.close()
    site.unit = make_unit(w3, tmp_path)
    ledger.register(site.unit.address)
    with pytest.raises(StateError, match="belongs to unit"):
        start(site)


def test_one_service_per_state_dir(site):
    service = start(site)
    with pytest.raises(StateError, match="another oracle is running"):
        start(site)
    service.close()


class PoaProxy(RpcProxy):
    """Forwards JSON-RPC to Anvil and makes every block look like a Clique/IBFT block:
    97 bytes of extraData (vanity + seal), which plain web3 refuses."""

    EXTRA = "0x" + "d883010b05846765746888676f312e32302e33856c696e7578" + "00" * 72

    def __init__(self, upstream: str):
        self.blocks_served = 0
        super().__init__(upstream)

    def answer(self, call: dict) -> dict:
        answer = self.forward(call)
        result = answer.get("result")
        if isinstance(result, dict) and "extraData" in result:
            result["extraData"] = self.EXTRA
            self.blocks_served += 1
        return answer


def test_proof_of_authority_chain_is_detected(site, counters, ledger, producer):
    proxy = PoaProxy(site.rpc_url)
    try:
        site.rpc_url = proxy.url
        service = start(site)
        service.read_once()
        counters.add(exp=77)
        service.read_once()
        drain(service)
        assert proxy.blocks_served > 0
        assert "poa" in [name for _, name in service.chain.w3.middleware_onion.middleware]
        assert ledger.totals(site.unit.address) == {("produced", producer): 77}
        service.close()
    finally:
        proxy.close()


def test_the_stop_drain_waits_for_a_reading_being_recorded(site, counters, ledger, producer):
    """Finding 11: SIGTERM while the reader is inside a reading: the sender drains what that
    reading adds instead of exiting with it pending."""
    service = start(site)
    service.read_once()  # the baseline
    counters.add(exp=5)
    real = service.drivers["inverter"]
    entered, release = threading.Event(), threading.Event()

    class Gate:
        def read(self):
            entered.set()
            release.wait(30)
            return real.read()

        def close(self):
            real.close()

    service.drivers["inverter"] = Gate()
    runner = threading.Thread(target=service.run, kwargs={"install_signals": False})
    runner.start()
    assert entered.wait(30)
    service.stop()

    def sender_alive() -> bool:
        return any(t.name == "oracle-sender" for t in threading.enumerate())

    deadline = time.monotonic() + 30
    while sender_alive() and not getattr(service, "_sender_waiting_reader", False):
        assert time.monotonic() < deadline, "the sender neither waited nor exited"
        time.sleep(0.01)
    release.set()
    runner.join(30)
    assert service.outbox.depth() == 0
    assert ledger.totals(site.unit.address) == {("produced", producer): 5}
