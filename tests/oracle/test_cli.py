"""The `oracle` command: bad input is one line and a non-zero exit; read, status, export, keygen.

The `run` cases start real processes (all at once, to keep the suite fast): a one-line error
has to hold for what an operator sees, not only inside click.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from eth_account import Account

from oracle.cli import main
from oracle.config import load_config, to_toml
from oracle.outbox import Outbox
from oracle.service import open_service
from tests.oracle.rig import PASSPHRASE, REPO, Counters, OracleSetup, free_port, make_unit


def meter_site(setup: OracleSetup, counters: Counters, producer: str) -> OracleSetup:
    setup.meters = [counters.meter("inverter", stored=False)]
    setup.channels = [
        {"meter": "inverter", "counter": "export", "kind": "produced", "account": producer}
    ]
    return setup


BAD_INPUT = {
    "unregistered unit": "is not an active storage unit of ledger",
    "wrong passphrase": "wrong passphrase",
    "no passphrase": "no keystore passphrase: set chain.passphrase_file",
    "missing deployments file": "no deployment for chain 31337",
    "ledger missing from deployments": "has no contract 'NoSuchLedger'",
    "invalid toml": "invalid TOML",
    "invalid value": "service.period_s: Input should be greater than 0",
    "missing section": "chain: Field required",
    "unknown driver": "unknown driver 'ferraris' (known: dsmr, sdm, shelly, simulated, smartpi)",
    "bad driver option": "driver 'sdm' options: port: Field required",
    "config not found": "not found",
    "unreachable rpc without chain id": "unreachable",
    "health port taken": "cannot serve health and metrics on 127.0.0.1:",
    # issue 10, finding 10
    "rpc answering 501": "501 Server Error",
    "ledger address of another contract": "is not the ledger (unit_info reverted without",
    "damaged outbox": "database disk image is malformed; restore the outbox from a backup",
    "state dir not writable": "(a read-only or full file system?)",
}


class Answer501(BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(501)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, anvil, ledger, deployments_dir, producer, w3):
    """Start `oracle run` once per bad input, all in parallel; collect (code, stdout, stderr)."""
    root = tmp_path_factory.mktemp("bad")
    counters = Counters(root, "meter")

    def setup_for(name: str, unit) -> OracleSetup:
        s = OracleSetup(root / name, anvil.url, deployments_dir, unit)
        (root / name).mkdir()
        return meter_site(s, counters, producer)

    busy = socket.create_server(("127.0.0.1", 0))  # another program has the health port
    not_rpc = ThreadingHTTPServer(("127.0.0.1", 0), Answer501)
    threading.Thread(target=not_rpc.serve_forever, daemon=True).start()
    # A contract that reverts every call without a reason (PUSH0 PUSH0 REVERT).
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "data": "0x6003600a5f3960035ff35f5ffd"}
        )
    )
    other_deployments = root / "other-deployments"
    other_deployments.mkdir()
    record = json.loads((deployments_dir / "31337.json").read_text())
    for contract in record["contracts"].values():
        contract["address"] = receipt["contractAddress"]
    (other_deployments / "31337.json").write_text(json.dumps(record))
    registered = make_unit(w3, root)
    ledger.register(registered.address)
    stranger = make_unit(w3, root)
    configs, envs = {}, {}
    for name in BAD_INPUT:
        unit = stranger if name == "unregistered unit" else registered
        s = setup_for(name.replace(" ", "-"), unit)
        data = s.data()
        env = {"POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE}
        if name == "wrong passphrase":
            env["POWERHIVE_ORACLE_PASSPHRASE"] = "hunter2"
        if name == "no passphrase":
            env = {}
        if name == "missing deployments file":
            data["chain"]["deployments_dir"] = str(root / "nowhere")
        if name == "ledger missing from deployments":
            data["chain"]["ledger"] = "NoSuchLedger"
        if name == "invalid value":
            data["service"]["period_s"] = -1
        if name == "missing section":
            del data["chain"]
        if name == "unknown driver":
            data["meters"][0]["driver"] = "ferraris"
        if name == "bad driver option":
            data["meters"][0].update(driver="sdm", options={"baudrate": 9600})
        if name == "health port taken":
            data["service"].update(http_enabled=True, http_port=busy.getsockname()[1])
        if name == "rpc answering 501":
            data["chain"]["rpc_url"] = f"http://127.0.0.1:{not_rpc.server_address[1]}"
        if name == "ledger address of another contract":
            data["chain"]["deployments_dir"] = str(other_deployments)
        if name == "damaged outbox":
            outbox = Path(data["service"]["state_dir"]) / "outbox.sqlite"
            Outbox(outbox).close()
            size = outbox.stat().st_size
            with open(outbox, "r+b") as fh:
                fh.seek(4096)
                fh.write(b"\xa5" * (size - 4096))
        if name == "state dir not writable":
            Path(data["service"]["state_dir"]).write_text("a file where the directory should be")
        if name == "unreachable rpc without chain id":
            data["chain"].update(rpc_url=f"http://127.0.0.1:{free_port()}", chain_id=None)
            data["chain"] = {k: v for k, v in data["chain"].items() if v is not None}
        path = s.root / "oracle.toml"
        text = to_toml(data)
        if name == "invalid toml":
            text = text.replace("[chain]", "[chain", 1)
        if name != "config not found":
            path.write_text(text)
        configs[name], envs[name] = path, env
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("POWERHIVE_")}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "oracle", "run", "--config", str(configs[name])],
            cwd=REPO,
            env={**base_env, **envs[name]},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in BAD_INPUT
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        results[name] = (proc.returncode, out, err)
    busy.close()
    not_rpc.shutdown()
    return results


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_a_nonzero_exit(bad_runs, case):
    code, out, err = bad_runs[case]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (out, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and BAD_INPUT[case] in lines[0], lines[0]
    assert out == ""


USAGE_ERRORS = {
    "unknown option": (["--bogus", "status"], "No such option: --bogus (see oracle --help)"),
    "unknown command": (["nosuch"], "No such command 'nosuch'. (see oracle --help)"),
    "a command's unknown option": (["status", "--bogus"], "(see oracle status --help)"),
    "option without its value": (["status", "--config"], "'--config' requires an argument"),
    "extra argument": (["read", "extra"], "Got unexpected extra argument (extra)"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_are_one_line(case):
    args, expected = USAGE_ERRORS[case]
    result = CliRunner(mix_stderr=False).invoke(main, args, prog_name="oracle")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and result.stdout == "", (result.stdout, result.stderr)
    assert lines == [lines[0]] and lines[0].startswith("Error: ") and expected in lines[0], lines


def test_usage_error_of_the_process_is_one_line():
    """What an operator sees from the installed command, not only inside click."""
    exe = shutil.which("oracle")
    assert exe, "oracle is not installed (pip install -e .)"
    done = subprocess.run([exe, "--bogus"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == ["Error: No such option: --bogus (see oracle --help)"]


def test_read_prints_each_meter(tmp_path):
    counters = Counters(tmp_path, "meter")
    counters.set(1234, 5678)
    path = tmp_path / "oracle.toml"
    path.write_text(
        to_toml(
            {
                "service": {"state_dir": str(tmp_path / "state")},
                "chain": {
                    "rpc_url": "http://127.0.0.1:1",
                    "deployments_dir": "deployments",
                    "keystore": "unit.json",
                },
                "meters": [
                    counters.meter("inverter", stored=False),
                    {"name": "pv", "rated_power_w": 5000.0, "options": {"seed": 4}},
                ],
                "channels": [
                    {
                        "meter": "inverter",
                        "counter": "export",
                        "kind": "produced",
                        "account": Account.create().address,
                    }
                ],
            }
        )
    )
    result = CliRunner().invoke(main, ["read", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["meter"]: row for row in json.loads(result.output)}
    assert (rows["inverter"]["import_wh"], rows["inverter"]["export_wh"]) == (1234, 5678)
    assert rows["pv"]["driver"] == "simulated"
    table = CliRunner().invoke(main, ["read", "--config", str(path)])
    assert "inverter" in table.output and "5,678" in table.output
    # Nothing was written: `read` is a look, not a reading.
    assert not (tmp_path / "state").exists()
    (counters.dir / "producecounter").unlink()
    failed = CliRunner().invoke(main, ["read", "--config", str(path)])
    assert failed.exit_code == 1
    assert failed.output.strip().splitlines()[-1] == "Error: 1 of 2 meters could not be read"


@pytest.fixture
def delivered(setup, tmp_path, producer):
    """A state dir with a few delivered reports, and its config path."""
    counters = Counters(tmp_path, "meter")
    meter_site(setup, counters, producer)
    path = setup.write()
    service = open_service(load_config(path), passphrase=PASSPHRASE)
    service.read_once()
    for wh in (10, 20, 30):
        counters.add(exp=wh)
        service.read_once()
    while service.deliver_once():
        pass
    counters.add(exp=5)
    service.read_once()  # one left pending
    service.close()
    return setup, path


def test_status_reports_outbox_and_chain(delivered):
    setup, path = delivered
    result = CliRunner().invoke(main, ["status", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["reports"] == {"pending": 1, "sending": 0, "confirmed": 3, "rejected": 0}
    assert status["readings"] == 5
    assert status["last_confirmed"]["seq"] == 3 and status["last_confirmed"]["wh"] == 30
    chain = status["chain"]
    assert chain["reachable"] and chain["active"] and chain["last_seq"] == 3
    assert chain["unit"] == setup.unit.address and chain["chain_id"] == 31337
    text = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert text.exit_code == 0
    assert "Outbox" in text.output and "Last confirmed: seq 3" in text.output


def test_status_without_chain_still_shows_the_outbox(delivered):
    setup, path = delivered
    data = tomllib.loads(path.read_text())
    data["chain"]["rpc_url"] = f"http://127.0.0.1:{free_port()}"
    path.write_text(to_toml(data))
    result = CliRunner().invoke(main, ["status", "--config", str(path), "--json"])
    status = json.loads(result.output)
    assert status["reports"]["confirmed"] == 3
    assert status["chain"]["reachable"] is False and "unreachable" in status["chain"]["error"]


def test_status_before_any_run_is_one_line(setup, tmp_path, producer):
    meter_site(setup, Counters(tmp_path, "meter"), producer)
    result = CliRunner().invoke(main, ["status", "--config", str(setup.write())])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "no outbox yet" in result.output


def test_export_writes_csv_and_json(delivered, tmp_path):
    _, path = delivered
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", "--config", str(path), "--csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    readings = pd.read_csv(out / "readings.csv")
    reports = pd.read_csv(out / "reports.csv")
    assert len(readings) == 5 and list(readings["export_wh"])[-1] == 2065
    assert list(reports["wh"]) == [10, 20, 30, 5]
    assert list(reports["status"]) == ["confirmed"] * 3 + ["pending"]
    assert "ts_utc" in readings.columns
    assert len(pd.read_csv(out / "txs.csv")) == 1
    result = CliRunner().invoke(
        main, ["export", "--config", str(path), "--json", "--out", str(out)]
    )
    assert result.exit_code == 0
    assert len(json.loads((out / "reports.json").read_text())) == 4


def test_keygen_writes_an_ape_style_keystore(tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text("s3cret\n")
    path = tmp_path / "unit.json"
    result = CliRunner().invoke(
        main, ["keygen", "--out", str(path), "--passphrase-file", str(secret)]
    )
    assert result.exit_code == 0, result.output
    address = result.output.split()[0]
    data = json.loads(path.read_text())
    assert Account.from_key(Account.decrypt(data, "s3cret")).address == address
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(
        main, ["keygen", "--out", str(path), "--passphrase-file", str(secret)]
    )
    assert again.exit_code == 1 and "already exists" in again.output


def test_passphrase_file_and_ape_keystore_work_headless(setup, tmp_path, producer, w3, ledger):
    """The unit key as `ape accounts` writes it (`EthAccount.encrypt` with its default scrypt
    parameters), the passphrase from a file."""
    account = Account.create()
    keystore = tmp_path / "storage-unit.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "from a file")))
    (tmp_path / "secret").write_text("from a file\n")
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address, "value": 10**18})
    ledger.register(account.address)
    meter_site(setup, Counters(tmp_path, "meter"), producer)
    setup.unit = make_unit(w3, tmp_path, fund=False)
    setup.unit.keystore, setup.unit.address = keystore, account.address
    setup.chain["passphrase_file"] = str(tmp_path / "secret")
    service = open_service(load_config(setup.write()))
    assert service.chain.unit == account.address
    service.close()
