"""The operator's path (issue 15, item 4): `oracle check` on a new Pi, over-consumption in the
logs, metrics and status, `oracle_last_seq` current after every send, empty CSV exports.

One module-scoped Anvil and ledger (tests/oracle/conftest.py); the service runs in process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from oracle.cli import main
from tests.oracle.rig import PASSPHRASE, REAL_LEDGER, REPO, Counters, free_port, make_unit
from tests.oracle.test_cli import meter_site


@pytest.fixture
def passphrase_env(monkeypatch):
    monkeypatch.setenv("POWERHIVE_ORACLE_PASSPHRASE", PASSPHRASE)


def _check(path):
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = result.stdout.splitlines()
    return result.exit_code, {line.split()[1]: line for line in lines if line[:4].strip()}, lines


def test_check_passes_on_a_ready_install(setup, tmp_path, producer, passphrase_env):
    meter_site(setup, Counters(tmp_path, "meter"), producer)
    path = setup.write()
    code, by_name, lines = _check(path)
    assert code == 0, lines
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 6, lines
    assert [line.split()[1] for line in lines[:-1]] == [
        "config", "keystore", "chain", "deployments", "registration", "meters",
    ]  # fmt: skip
    assert setup.unit.address in by_name["keystore"] and "decrypts" in by_name["keystore"]
    assert "serves chain 31337" in by_name["chain"]
    assert "code on chain" in by_name["deployments"]
    assert "active" in by_name["registration"] and "last_seq 0" in by_name["registration"]
    assert lines[-1].startswith("all 6 checks passed")
    assert not setup.state_dir.exists()  # nothing written


def test_check_fails_line_by_line_never_a_traceback(
    setup, tmp_path, producer, w3, passphrase_env, monkeypatch
):
    counters = Counters(tmp_path, "meter")
    meter_site(setup, counters, producer)
    stranger = make_unit(w3, tmp_path, fund=False)  # a key the Council never registered
    setup.unit = stranger
    (counters.dir / "producecounter").unlink()
    setup.chain["deployments_dir"] = str(tmp_path / "nowhere")
    code, by_name, lines = _check(setup.write())
    assert code == 1
    assert by_name["keystore"].startswith("ok")
    assert by_name["deployments"].startswith("FAIL") and "not found" in by_name["deployments"]
    assert by_name["registration"].startswith("FAIL")
    assert by_name["meters"].startswith("FAIL") and "inverter" in by_name["meters"]

    # Wrong passphrase, a node on another chain, an unregistered unit: each its own line.
    monkeypatch.setenv("POWERHIVE_ORACLE_PASSPHRASE", "hunter2")
    setup.chain.update(deployments_dir=str(setup.deployments_dir), chain_id=4242)
    counters.set(1, 2)
    code, by_name, lines = _check(setup.write())
    assert code == 1
    assert by_name["keystore"].startswith("FAIL") and "wrong passphrase" in by_name["keystore"]
    assert by_name["chain"].startswith("FAIL") and "serves chain 31337" in by_name["chain"]
    assert by_name["registration"].startswith("skip")
    assert by_name["meters"].startswith("ok")

    monkeypatch.setenv("POWERHIVE_ORACLE_PASSPHRASE", PASSPHRASE)
    setup.chain.update(chain_id=31337)
    code, by_name, lines = _check(setup.write())
    assert code == 1
    assert by_name["registration"].startswith("FAIL")
    assert "is not an active storage unit" in by_name["registration"]
    assert sum(line.startswith("FAIL") for line in lines) == 1, lines


def test_check_as_a_process_bad_config_and_dead_rpc(setup, tmp_path, producer):
    meter_site(setup, Counters(tmp_path, "meter"), producer)
    setup.chain["rpc_url"] = f"http://127.0.0.1:{free_port()}"
    good = setup.write()
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("[chain]", "[chain", 1))
    env = {"PATH": "/usr/bin:/bin", "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE}
    for path, failing in ((bad, "config"), (good, "chain")):
        proc = subprocess.run(
            [sys.executable, "-m", "oracle", "check", "--config", str(path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "Traceback" not in proc.stdout + proc.stderr
        assert proc.stderr.strip().endswith("checks did not pass")
        (line,) = [x for x in proc.stdout.splitlines() if x.split()[1] == failing]
        assert line.startswith("FAIL"), proc.stdout
    assert len(proc.stdout.splitlines()) == 6


def test_export_of_an_empty_outbox_has_headers(setup, tmp_path, producer, passphrase_env):
    from oracle.config import load_config
    from oracle.service import open_service

    meter_site(setup, Counters(tmp_path, "meter"), producer)
    path = setup.write()
    open_service(load_config(path), passphrase=PASSPHRASE).close()  # an outbox, no rows
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name, column in (
        ("readings", "import_wh"),
        ("reports", "seq"),
        ("anomalies", "kind"),
        ("txs", "tx_hash"),
    ):
        frame = pd.read_csv(out / f"{name}.csv")
        assert len(frame) == 0 and column in frame.columns, (name, list(frame.columns))
    result = CliRunner().invoke(
        main, ["export", "--config", str(path), "--json", "--out", str(out)]
    )
    assert json.loads((out / "reports.json").read_text()) == []


def _consumer_site(setup, tmp_path, producer: str, consumer: str):
    """A service whose meter produces for `producer` and consumes for `consumer`, with 500 Wh
    produced and delivered (seq 1): (config path, its counters, the open service)."""
    from oracle.config import load_config
    from oracle.service import open_service

    counters = Counters(tmp_path, "meter")
    setup.meters = [counters.meter("inverter", stored=False)]
    setup.channels = [
        {"meter": "inverter", "counter": "export", "kind": "produced", "account": producer},
        {"meter": "inverter", "counter": "import", "kind": "consumed", "account": consumer},
    ]
    path = setup.write()
    service = open_service(load_config(path), passphrase=PASSPHRASE)
    service.read_once()
    counters.add(exp=500)
    service.read_once()
    while service.deliver_once():
        pass
    return path, counters, service


@pytest.mark.skipif(not REAL_LEDGER, reason="over-consumption is the real ledger's rule")
def test_over_consumption_in_logs_metrics_and_status(
    setup, tmp_path, producer, w3, passphrase_env, caplog
):
    """A consumer without a session draws energy: the ledger records it (`OverConsumed`),
    never rejects it, and the operator sees it in the log, /metrics, /health and status."""
    consumer = w3.eth.accounts[6]  # holds no session with this unit
    path, counters, service = _consumer_site(setup, tmp_path, producer, consumer)
    try:
        metrics = service.metrics.exposition().decode()
        assert "oracle_last_seq 1.0" in metrics  # current after the send, not at the next idle
        counters.add(imp=120)
        service.read_once()
        caplog.set_level("WARNING", logger="oracle.service")
        while service.deliver_once():
            pass
        metrics = service.metrics.exposition().decode()
        assert "oracle_last_seq 2.0" in metrics
        assert f'oracle_over_consumed_wh_total{{consumer="{consumer}"}} 120.0' in metrics
        assert f'oracle_over_consumptions_total{{consumer="{consumer}"}} 1.0' in metrics
        (record,) = [r for r in caplog.records if "over-consumption" in r.getMessage()]
        assert (record.consumer, record.seq, record.over_wh) == (consumer, 2, 120)
        _, health = service.health()
        assert health["over_consumed_wh"] == 120
        assert health["last_over_consumption"]["consumer"] == consumer
    finally:
        service.close()
    status = CliRunner().invoke(main, ["status", "--config", str(path), "--json"])
    assert status.exit_code == 0, status.output
    over = json.loads(status.output)["chain"]["over_consumed"]
    assert (over["count"], over["wh"], over["last"]["seq"]) == (1, 120, 2)
    text = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert "Over-consumption" in text.output and "120 Wh" in text.output


@pytest.mark.skipif(not REAL_LEDGER, reason="over-consumption is the real ledger's rule")
def test_over_consumption_found_at_reconciliation_is_in_the_metrics(
    setup, tmp_path, producer, w3, passphrase_env, caplog
):
    """The transaction that recorded an over-consumption is mined, but the service never saw
    its receipt (stopped while waiting, as a crash leaves it): the restarted service finds the
    report at reconciliation and counts the over-consumption in /metrics and /health, once."""
    from oracle.config import load_config
    from oracle.errors import TxPending
    from oracle.service import open_service

    consumer = w3.eth.accounts[6]
    path, counters, service = _consumer_site(setup, tmp_path, producer, consumer)
    try:
        counters.add(imp=90)
        service.read_once()

        def receipt_never_seen(signed, give_up=None):
            raise TxPending(signed.tx_hash)

        service.chain.wait_mined = receipt_never_seen
        with pytest.raises(TxPending):
            service.deliver_once()
        assert "oracle_over_consumed_wh_total{" not in service.metrics.exposition().decode()
    finally:
        service.close()
    caplog.set_level("WARNING", logger="oracle.service")
    again = open_service(load_config(path), passphrase=PASSPHRASE)
    try:
        assert again.deliver_once() is False  # reconciled: the report was on chain
        again.reconcile()  # a second reconciliation counts nothing again
        metrics = again.metrics.exposition().decode()
        assert f'oracle_over_consumed_wh_total{{consumer="{consumer}"}} 90.0' in metrics
        assert f'oracle_over_consumptions_total{{consumer="{consumer}"}} 1.0' in metrics
        (record,) = [r for r in caplog.records if "over-consumption" in r.getMessage()]
        assert (record.consumer, record.seq, record.over_wh) == (consumer, 2, 90)
        _, health = again.health()
        assert health["over_consumed_wh"] == 90
    finally:
        again.close()
