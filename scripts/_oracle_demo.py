"""The oracle part of `ape run demo`: a compressed day of simulated meters, delivered on chain.

Not an `ape run` entry point (the leading underscore hides it); `scripts/demo.py` calls
`run_oracle_demo`. It needs no Ape: plain web3 against the RPC URL, like the service itself.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eth_account import Account
from rich.console import Console
from rich.table import Table

from oracle.audit import reports_on_chain
from oracle.config import load_config, to_toml
from oracle.deployments import load_deployment
from oracle.drivers import DriverContext
from oracle.drivers.simulated import SimulatedMeter, SimulatedOptions
from oracle.logs import oracle_logs_to
from oracle.service import open_service

DAY_START = datetime(2024, 6, 21, tzinfo=UTC)


@dataclass
class DemoResult:
    """Per (kind, account) Wh: what the meters measured and what the ledger accepted."""

    meters: dict[tuple[str, str | None], int] = field(default_factory=dict)
    on_chain: dict[tuple[str, str | None], int] = field(default_factory=dict)
    transactions: int = 0
    gas_used: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    state_dir: Path | None = None
    first_block: int = 0

    @property
    def match(self) -> bool:
        return self.meters == self.on_chain


def _keystore(unit: str | Path, directory: Path, passphrase: str | None) -> tuple[Path, str]:
    """A keystore path and its passphrase; a raw private key gets a throwaway keystore."""
    if isinstance(unit, Path):
        if passphrase is None:
            raise ValueError("a keystore needs its passphrase")
        return unit, passphrase
    passphrase = "powerhive demo"
    # Demo keys are Anvil's public test keys: a light KDF keeps the demo fast.
    data = Account.encrypt(unit, passphrase, kdf="scrypt", iterations=2**10)
    path = directory / "demo-unit.json"
    path.write_text(json.dumps(data))
    return path, passphrase


def run_oracle_demo(
    *,
    rpc_url: str,
    deployment_dir: Path,
    unit: str | Path,
    producers: Mapping[str, str],
    consumers: Mapping[str, str],
    passphrase: str | None = None,
    ledger: str = "EnergyLedger",
    duration_s: float = 30.0,
    compression: float = 2880.0,
    period_s: float = 0.5,
    seed: int = 7,
    state_dir: Path | None = None,
    console: Console | None = None,
) -> DemoResult:
    """Run the oracle with simulated meters for a compressed day and compare on-chain energy
    with the meters.

    Preconditions (the caller's job, as governance and users would do it):
    - `deployment_dir/<chain_id>.json` has the ledger under the name `ledger`;
    - the unit is registered and active on that ledger and holds ETH for gas;
    - every consumer holds a consumption session with the unit that is large enough for a
      household's day (otherwise the ledger refuses consumption with "ledger: no session",
      the oracle records those reports as rejected, and the table shows the difference).

    Arguments:
    - `unit`: the unit's private key (hex string; written to a throwaway keystore) or the
      `Path` of its keystore, with `passphrase`;
    - `producers` / `consumers`: label -> address; each producer gets a simulated PV array,
      each consumer a simulated household; one simulated battery reports the actual energy;
    - `duration_s` of wall time at `compression` (2880: a day in 30 s), meters read every
      `period_s`; `seed` varies the weather and the loads.

    It prints, with rich, a table of each meter's total next to the energy the ledger accepted
    (decoded from the unit's successful transactions, so any ledger with the
    `IEnergyLedger` ABI works), and returns them in a `DemoResult` (`.match` is exact
    equality). The oracle's state (outbox, config, log) stays in `state_dir` (a temporary
    directory by default).
    """
    console = console or Console()
    state_dir = Path(state_dir or tempfile.mkdtemp(prefix="powerhive-oracle-demo-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    keystore, secret = _keystore(unit, state_dir, passphrase)

    sims: dict[str, dict] = {}
    channels: list[dict] = []
    for i, (label, address) in enumerate(producers.items()):
        name = f"pv-{label}"
        sims[name] = {"profile": "pv", "peak_w": 3000.0 + 1500.0 * i, "seed": seed + i}
        channels.append(
            {"meter": name, "counter": "export", "kind": "produced", "account": address}
        )
    for i, (label, address) in enumerate(consumers.items()):
        name = f"house-{label}"
        sims[name] = {"profile": "household", "peak_w": 2500.0 + 500.0 * i, "seed": seed + 50 + i}
        channels.append(
            {"meter": name, "counter": "import", "kind": "consumed", "account": address}
        )
    sims["battery"] = {"profile": "battery", "peak_w": 3000.0, "capacity_wh": 13_500, "seed": seed}
    # An actual-energy report every simulated hour.
    channels.append(
        {"meter": "battery", "counter": "stored", "kind": "actual", "min_interval_s": 3600.0}
    )
    for options in sims.values():
        options.update(compression=compression, start=DAY_START)

    config_path = state_dir / "oracle.toml"
    config_path.write_text(
        to_toml(
            {
                "service": {
                    "state_dir": str(state_dir / "state"),
                    "period_s": period_s,
                    "http_enabled": False,
                    "log_format": "json",
                    "stop_drain_s": 15.0,
                },
                "chain": {
                    "rpc_url": rpc_url,
                    "deployments_dir": str(Path(deployment_dir).resolve()),
                    "ledger": ledger,
                    "keystore": str(keystore),
                    "rpc_timeout_s": 5.0,
                    "retry_max_s": 2.0,
                    "settle_timeout_s": 10.0,
                },
                "meters": [
                    {
                        "name": name,
                        "driver": "simulated",
                        "rated_power_w": 1.2 * options["peak_w"] + 500,
                        "options": options,
                    }
                    for name, options in sims.items()
                ],
                "channels": channels,
            }
        )
    )
    config = load_config(config_path)
    with (state_dir / "oracle.log").open("w") as log_file, oracle_logs_to(log_file):
        service = open_service(config, passphrase=secret)
        result = _run(service, duration_s, compression, console)
    return _compare(service, result, sims, channels, deployment_dir, ledger, console)


def _run(service, duration_s: float, compression: float, console: Console) -> DemoResult:
    first_block = service.chain.rpc(lambda: service.chain.w3.eth.block_number) + 1
    console.rule(f"Oracle: a simulated day on chain {service.chain.chain_id} ({duration_s:g} s)")
    runner = threading.Thread(target=service.run, kwargs={"install_signals": False})
    started = time.monotonic()
    runner.start()
    with console.status("starting") as status:
        while (elapsed := time.monotonic() - started) < duration_s and runner.is_alive():
            sim_now = DAY_START + timedelta(seconds=elapsed * compression)
            counts = service.outbox.counts()
            status.update(
                f"simulated {sim_now:%H:%M}  readings {service.outbox.count('readings')}  "
                f"confirmed {counts['confirmed']}  waiting {counts['pending'] + counts['sending']}"
            )
            time.sleep(0.5)
        status.update("stopping: delivering what is left")
        service.stop()
        runner.join()
    return DemoResult(state_dir=service.config.service.state_dir.parent, first_block=first_block)


def _compare(service, result, sims, channels, deployment_dir, ledger, console) -> DemoResult:
    rows = service.outbox.table("readings")
    result.outbox = service.outbox.counts()
    models = {
        name: SimulatedMeter(SimulatedOptions(**options), DriverContext(name))
        for name, options in sims.items()
    }

    def measured(meter: str, counter: str) -> int:
        mine = [r for r in rows if r["meter"] == meter]
        if len(mine) < 2:
            return 0
        first = models[meter].counters_at(mine[0]["monotonic"])
        last = models[meter].counters_at(mine[-1]["monotonic"])
        return getattr(last, counter) - getattr(first, counter)

    labels: dict[tuple[str, str | None], str] = {}
    for channel in channels:
        if channel["kind"] == "actual":
            actual = [r for r in service.outbox.table("reports") if r["kind"] == "actual"]
            if actual:
                last = max(actual, key=lambda r: r["id"])
                reading = next(r for r in rows if r["id"] == last["reading_id"])
                key = ("actual", None)
                result.meters[key] = models["battery"].counters_at(reading["monotonic"]).stored_wh
                labels[key] = "battery (last actual energy)"
            continue
        key = (channel["kind"], channel["account"])
        counter = "export_wh" if channel["counter"] == "export" else "import_wh"
        wh = measured(channel["meter"], counter)
        if wh:
            result.meters[key] = wh
        labels[key] = channel["meter"]

    record = load_deployment(Path(deployment_dir), service.chain.chain_id).contract(ledger)
    w3 = service.chain.w3
    contract = w3.eth.contract(address=record.address, abi=record.abi)
    found = reports_on_chain(w3, contract, service.chain.unit, result.first_block)
    result.on_chain = found.totals
    result.transactions, result.gas_used = found.transactions, found.gas_used

    table = Table(title="Simulated meters vs the ledger")
    for col in ("meter", "ledger meaning", "account", "meter Wh", "on-chain Wh", ""):
        table.add_column(col, justify="right" if "Wh" in col else "left")
    for key in sorted(set(result.meters) | set(result.on_chain), key=str):
        kind, account = key
        meter_wh, chain_wh = result.meters.get(key, 0), result.on_chain.get(key, 0)
        table.add_row(
            labels.get(key, "?"),
            {"produced": "energy_produced", "consumed": "energy_consumed"}.get(
                kind, "report_actual_energy"
            ),
            account or "-",
            f"{meter_wh:,}",
            f"{chain_wh:,}",
            "[green]equal[/green]" if meter_wh == chain_wh else "[red]DIFFERENT[/red]",
        )
    console.print(table)
    console.print(
        f"{result.transactions} transactions, {result.gas_used:,} gas; outbox: "
        f"{result.outbox['confirmed']} confirmed, {result.outbox['rejected']} rejected, "
        f"{result.outbox['pending'] + result.outbox['sending']} waiting. State: {result.state_dir}"
    )
    service.outbox.close()
    return result
