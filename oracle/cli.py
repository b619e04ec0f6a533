"""`oracle`: run the service, read the meters, show the state, export it, make a key.

Every operator error (bad config, unknown driver, missing deployments file, wrong passphrase,
unregistered unit, ...) is one line on stderr and exit status 1; no traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from oracle import __version__
from oracle.cli_base import OneLineGroup
from oracle.config import OracleConfig, load_config
from oracle.errors import ChainError, KeystoreError, StateError
from oracle.lifecycle import StopRequest
from oracle.logs import setup_logging

log = logging.getLogger("oracle")


def config_option(default: str, envvar: str, what: str):
    """The `--config/-c` option of a service's TOML file."""
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
        envvar=envvar,
        help=f"The {what}'s TOML configuration.",
    )


CONFIG = config_option("oracle.toml", "POWERHIVE_ORACLE_CONFIG", "service")
QUEEN_CONFIG = config_option("queen.toml", "POWERHIVE_QUEEN_CONFIG", "queen")
RELAYER_CONFIG = config_option("relayer.toml", "POWERHIVE_RELAYER_CONFIG", "relayer")


@click.group(cls=OneLineGroup)
@click.version_option(__version__, prog_name="oracle")
def main() -> None:
    """PowerHive storage-unit oracle (meters in, ledger reports out), hive queen and bridge
    relayer."""


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _serve(name: str, path: Path, load: tuple[str, str], start: tuple[str, str], **kw):
    """Run service `name` until SIGTERM or SIGINT: `load = (module, function)` reads its
    config at `path`, `start = (module, function)` opens it (`**kw` passed on). The stop
    handler comes first of all (a stop signal while the service is still starting is a clean
    stop too), the service's module after the config (web3 is slow to import)."""
    stop = StopRequest.install()
    config = getattr(importlib.import_module(load[0]), load[1])(path)
    setup_logging(config.service.log_level, config.service.log_format)
    opener = getattr(importlib.import_module(start[0]), start[1])
    if stop.requested:
        log.info(f"{name} stopped before it started", extra={"signal": stop.signal})
        sys.exit(0)
    stop.exit(opener(config, **kw).run(stop=stop))


@main.command()
@CONFIG
def run(config_path: Path) -> None:
    """Run the service until SIGTERM or SIGINT."""
    _serve(
        "oracle",
        config_path,
        ("oracle.config", "load_config"),
        ("oracle.service", "open_service"),
        config_path=config_path,
    )


@main.command()
@RELAYER_CONFIG
def relay(config_path: Path) -> None:
    """Run the bridge relayer (two chains, one relayer key) until SIGTERM or SIGINT."""
    load, start = (
        ("oracle.relayer_config", "load_relayer_config"),
        ("oracle.relayer", "open_relayer"),
    )
    _serve("relayer", config_path, load, start)


@main.command()
@QUEEN_CONFIG
def queen(config_path: Path) -> None:
    """Run the hive queen (the hive's meters in, HiveMarket periods out) until SIGTERM."""
    load, start = ("oracle.queen_config", "load_queen_config"), ("oracle.queen", "open_queen")
    _serve("queen", config_path, load, start)


@main.command("queen-status")
@QUEEN_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def queen_status(config_path: Path, as_json: bool) -> None:
    """Show the queen's outbox (periods pending and settled) and the hive's market."""
    from oracle.queen import STATE_FILE, make_client
    from oracle.queen_config import load_queen_config
    from oracle.queen_store import QueenStore

    config = load_queen_config(config_path)
    store = QueenStore(config.service.state_dir / STATE_FILE, readonly=True)
    try:
        counts = store.counts()
        report = {
            "hive": config.queen.hive,
            "periods": counts,
            "next_to_record": store.next_to_record(),
            "last_settled": store.last_settled(),
            "transactions": len(store.txs()),
            "mismatches": [p for p, _ in store.mismatches()],
            "chain": {"reachable": False},
        }
    finally:
        store.close()
    from oracle.keystore import keystore_address

    address = keystore_address(config.chain.keystore)
    try:
        client = make_client(config, None, address)
        m = client.market_state(config.queen.hive)
        report["chain"] = {
            "reachable": True,
            "market": client.market.address,
            "next_period": m.next_period,
            "open": m.open,
            "submitted": m.submitted,
            "workers": m.workers,
            "queen": m.queen,
            "is_queen": m.queen == address,
            "deposit": m.deposit,
        }
    except ChainError as exc:
        report["chain"]["error"] = str(exc)
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    console = Console()
    last = report["last_settled"]
    console.print(
        f"Hive {report['hive']}: {counts['pending']} periods pending, {counts['settled']} "
        f"settled ({counts['final']} final, {counts['not_final']} not final yet), next to "
        f"record {report['next_to_record']}, {report['transactions']} transactions"
    )
    if report["mismatches"]:
        console.print(
            "[red]Chain settled other numbers[/red] for periods "
            f"{', '.join(map(str, report['mismatches']))}: see the queen's log, then "
            "`oracle queen-ack PERIOD`"
        )
    if last:
        console.print(
            f"Last settled: period {last['period']} (P {last['production']:,} Wh, "
            f"C {last['consumption']:,} Wh) at {_iso(last['settled_at'])}"
        )
    chain = report["chain"]
    if chain["reachable"]:
        queen_note = "this key" if chain["is_queen"] else "[red]NOT this key[/red]"
        console.print(
            f"Market {chain['market']}: next period {chain['next_period']}"
            f"{' (open, ' + str(chain['submitted']) + ' submitted)' if chain['open'] else ''}, "
            f"{chain['workers']} workers, queen {chain['queen']} ({queen_note}), owner "
            f"deposit {chain['deposit']:,}"
        )
    else:
        console.print(f"[red]Chain unavailable[/red]: {chain.get('error')}")


@main.command()
@CONFIG
def rebind(config_path: Path) -> None:
    """Release a state dir bound to the wrong chain, ledger or unit, keeping its readings.

    Allowed only while none of its reports ever got a sequence number (nothing was sent
    under the wrong binding); the next `oracle run` binds it to the configured chain and
    sends its pending reports there."""
    config = load_config(config_path)
    from oracle.outbox import Outbox
    from oracle.service import MARKER_FILE, OUTBOX_FILE
    from oracle.statelock import StateLock

    state_dir = config.service.state_dir
    if not (state_dir / OUTBOX_FILE).exists():
        raise StateError(f"{state_dir / OUTBOX_FILE}: no outbox to rebind")
    lock = StateLock(state_dir)
    try:
        box = Outbox(state_dir / OUTBOX_FILE)
        try:
            counts = box.counts()
            if counts["sending"] or counts["confirmed"]:
                raise StateError(
                    f"{box.path} sent reports under its binding ({box.meta().get('chain_id')}); "
                    "it cannot be rebound: use another state_dir"
                )
            old = box.meta().get("chain_id")
            for key in ("chain_id", "ledger", "unit", "accepted_through", "foreign_writer"):
                box.set_meta(key, None)
            pending = counts["pending"]
        finally:
            box.close()
        (state_dir / MARKER_FILE).unlink(missing_ok=True)
    finally:
        lock.release()
    click.echo(
        f"{state_dir} released from chain_id {old}; {pending} pending reports go to the "
        "configured chain at the next `oracle run`"
    )


@main.command("accept-chain")
@CONFIG
def accept_chain(config_path: Path) -> None:
    """Take the ledger's reports for this unit, up to now, as not this outbox's.

    For a service that stopped because another writer used its unit key: once the other
    writer is stopped, this records the ledger's current last_seq as known, so the service
    resumes and sends its pending reports under new numbers (nothing it sent is lost)."""
    config = load_config(config_path)
    setup_logging(config.service.log_level, config.service.log_format)
    from oracle.keystore import keystore_address
    from oracle.outbox import Outbox
    from oracle.service import OUTBOX_FILE
    from oracle.statelock import StateLock
    from oracle.wiring import chain_client, probe_chain_id

    lock = StateLock(config.service.state_dir)
    try:
        chain_id = probe_chain_id(config)
        chain = chain_client(
            config, chain_id=chain_id, unit=keystore_address(config.chain.keystore)
        )
        last = chain.last_seq()
        box = Outbox(config.service.state_dir / OUTBOX_FILE)
        try:
            box.set_meta("accepted_through", str(last))
            box.set_meta("foreign_writer", None)
        finally:
            box.close()
    finally:
        lock.release()
    click.echo(f"ledger reports through seq {last} accepted; `oracle run` sends the rest")


@main.command()
@CONFIG
def check(config_path: Path) -> None:
    """Check a new install: config, keystore, chain id, deployments, registration, meters.

    One line per check (ok, FAIL, or skip when a check it needs failed); exit status 1 when
    any did not pass. Nothing is written."""
    from oracle.check import run_checks

    results = []
    for result in run_checks(config_path):
        click.echo(result.line())
        results.append(result)
    failed = [r for r in results if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(results)} checks did not pass", err=True)
        sys.exit(1)
    click.echo(f"all {len(results)} checks passed: `oracle run --config {config_path}`")


@main.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def read(config_path: Path, as_json: bool) -> None:
    """Take one reading from each meter (nothing is recorded)."""
    from oracle.errors import MeterError
    from oracle.service import make_drivers

    config = load_config(config_path)
    state_dir = config.service.state_dir if config.service.state_dir.is_dir() else None
    drivers = make_drivers(config, state_dir)
    rows, failed = [], 0
    for meter in config.meters:
        driver = drivers[meter.name]
        try:
            r = driver.read()
            rows.append(
                {
                    "meter": meter.name,
                    "driver": meter.driver,
                    "ts": r.ts,
                    "import_wh": r.import_wh,
                    "export_wh": r.export_wh,
                    "stored_wh": r.stored_wh,
                }
            )
        except MeterError as exc:
            failed += 1
            rows.append({"meter": meter.name, "driver": meter.driver, "error": str(exc)})
        finally:
            driver.close()
    if as_json:
        click.echo(json.dumps(rows))
    else:
        table = Table(title="Meter readings")
        for col in ("meter", "driver", "time", "import Wh", "export Wh", "stored Wh"):
            table.add_column(col, justify="left" if col in ("meter", "driver", "time") else "right")
        for row in rows:
            if "error" in row:
                table.add_row(row["meter"], row["driver"], f"[red]{row['error']}[/red]", "", "", "")
            else:
                stored = "-" if row["stored_wh"] is None else f"{row['stored_wh']:,}"
                table.add_row(
                    row["meter"],
                    row["driver"],
                    _iso(row["ts"]),
                    f"{row['import_wh']:,}",
                    f"{row['export_wh']:,}",
                    stored,
                )
        Console().print(table)
    if failed:
        raise click.ClickException(f"{failed} of {len(rows)} meters could not be read")


def _chain_status(config: OracleConfig) -> dict:
    from oracle.keystore import keystore_address
    from oracle.wiring import chain_client, probe_chain_id

    status: dict = {"rpc_url": config.chain.rpc_url}
    try:
        unit = keystore_address(config.chain.keystore)
        status["unit"] = unit
        chain_id = probe_chain_id(config)
        status["chain_id"] = chain_id
        client = chain_client(config, chain_id=chain_id, unit=unit)
        status["ledger"] = client.ledger.address
        status["served_chain_id"] = client.connect()
        status["block"] = client.rpc(lambda: client.w3.eth.block_number)
        info = client.unit_info()
        status.update(
            active=info.active,
            owner=info.owner,
            available_wh=info.available_wh,
            locked_wh=info.locked_wh,
            last_seq=info.last_seq,
            balance_eth=client.balance_wei() / 10**18,
        )
        from dataclasses import asdict

        from oracle.wiring import contract

        since = contract(config.chain.deployments_dir, chain_id, config.chain.ledger).block
        over = client.over_consumption_since(since)
        status["over_consumed"] = {
            "count": len(over),
            "wh": sum(o.wh for o in over),
            "last": asdict(over[-1]) if over else None,
        }
        status["reachable"] = True
    except (ChainError, KeystoreError) as exc:
        status.update(reachable=False, error=str(exc))
    return status


@main.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(config_path: Path, as_json: bool) -> None:
    """Show the outbox, the last confirmed report and the chain."""
    from oracle.outbox import Outbox
    from oracle.service import OUTBOX_FILE

    config = load_config(config_path)
    outbox = Outbox(config.service.state_dir / OUTBOX_FILE, readonly=True)
    try:
        report = {
            "reports": outbox.counts(),
            "readings": outbox.count("readings"),
            "anomalies": outbox.count("anomalies"),
            "last_confirmed": outbox.last_confirmed(),
            "meters": outbox.last_readings(),
            "chain": _chain_status(config),
        }
    finally:
        outbox.close()
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    console = Console()
    counts = report["reports"]
    table = Table(title="Outbox")
    for col in ("pending", "sending", "confirmed", "rejected", "readings", "anomalies"):
        table.add_column(col, justify="right")
    table.add_row(
        *(str(counts[k]) for k in ("pending", "sending", "confirmed", "rejected")),
        str(report["readings"]),
        str(report["anomalies"]),
    )
    console.print(table)
    last = report["last_confirmed"]
    if last:
        console.print(
            f"Last confirmed: seq {last['seq']} ({last['kind']} {last['wh']:,} Wh from "
            f"{last['channel']}) at {_iso(last['confirmed_at'])} in block {last['block_number']} "
            f"tx {last['tx_hash']}"
        )
    else:
        console.print("Last confirmed: none yet")
    meters = Table(title="Last readings")
    for col in ("meter", "time", "import Wh", "export Wh", "stored Wh"):
        meters.add_column(col, justify="left" if col in ("meter", "time") else "right")
    for m in report["meters"]:
        stored = "-" if m["stored_wh"] is None else f"{m['stored_wh']:,}"
        meters.add_row(
            m["meter"], _iso(m["ts"]), f"{m['import_wh']:,}", f"{m['export_wh']:,}", stored
        )
    console.print(meters)
    chain = report["chain"]
    if chain.get("reachable"):
        console.print(
            f"Chain {chain['chain_id']} at {chain['rpc_url']}: block {chain['block']}, "
            f"ledger {chain['ledger']}, unit {chain['unit']} "
            f"{'active' if chain['active'] else '[red]NOT ACTIVE[/red]'}, last_seq "
            f"{chain['last_seq']}, available {chain['available_wh']:,} Wh, "
            f"balance {chain['balance_eth']:.6f}"
        )
        over = chain["over_consumed"]
        if over["count"]:
            last = over["last"]
            console.print(
                f"[red]Over-consumption[/red] recorded by the ledger for this unit: "
                f"{over['count']} reports, {over['wh']:,} Wh in all; last seq {last['seq']}, "
                f"{last['wh']:,} Wh by {last['consumer']} (energy drawn without a session or "
                "beyond its reserve)"
            )
        else:
            console.print("Over-consumption: none recorded by the ledger for this unit")
    else:
        console.print(f"[red]Chain unavailable[/red]: {chain.get('error')}")


@main.command("queen-ack")
@QUEEN_CONFIG
@click.argument("period", type=click.IntRange(min=0))
def queen_ack(config_path: Path, period: int) -> None:
    """Acknowledge that the chain settled PERIOD with other numbers than the queen's outbox
    recorded (once explained): /health stops reporting it; the acknowledgement is kept in the
    outbox. Works beside a running queen."""
    from oracle.queen import STATE_FILE
    from oracle.queen_config import load_queen_config
    from oracle.queen_store import QueenStore

    config = load_queen_config(config_path)
    path = config.service.state_dir / STATE_FILE
    if not path.exists():
        raise StateError(f"{path}: no queen outbox yet (never started?)")
    store = QueenStore(path)
    try:
        before = store.acknowledge(period)
    finally:
        store.close()
    if before is None:
        click.echo(f"period {period}: mismatch acknowledged")
    else:
        click.echo(f"period {period}: mismatch already acknowledged at {_iso(before)}")


@main.command("queen-export")
@QUEEN_CONFIG
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The CSV file to write: a row per period and worker.",
)
def queen_export(config_path: Path, csv_path: Path) -> None:
    """Export the queen's periods: per worker the Wh settled, the tx hashes (pandas)."""
    import pandas as pd

    from oracle.queen import STATE_FILE
    from oracle.queen_config import load_queen_config
    from oracle.queen_store import EXPORT_COLUMNS, QueenStore

    config = load_queen_config(config_path)
    store = QueenStore(config.service.state_dir / STATE_FILE, readonly=True)
    try:
        frame = pd.DataFrame(store.export_rows(), columns=EXPORT_COLUMNS)
    finally:
        store.close()
    names = {w.address: w.name for w in config.workers}
    frame.insert(2, "name", frame["worker"].map(names).fillna(""))
    for col in ("recorded_at", "settled_at"):
        frame[f"{col}_utc"] = pd.to_datetime(frame[col], unit="s", utc=True)
    try:
        frame.to_csv(csv_path, index=False)
    except OSError as exc:
        raise StateError(f"{csv_path}: {exc.strerror or exc}") from None
    periods = frame["period"].nunique()
    click.echo(f"{csv_path}: {len(frame)} rows ({periods} periods)")


@main.command()
@CONFIG
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV files (default).")
@click.option("--json", "fmt", flag_value="json", help="JSON files (records).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for readings, reports, anomalies and txs files.",
)
def export(config_path: Path, fmt: str, out_dir: Path) -> None:
    """Export readings, reports, anomalies and transactions (pandas)."""
    import pandas as pd

    from oracle.outbox import Outbox
    from oracle.service import OUTBOX_FILE

    config = load_config(config_path)
    outbox = Outbox(config.service.state_dir / OUTBOX_FILE, readonly=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("readings", "reports", "anomalies", "txs"):
            # The columns from the schema: an empty table is a file with its header line.
            frame = pd.DataFrame(outbox.table(name), columns=outbox.columns(name))
            for col in ("ts", "recorded_at", "created_at", "confirmed_at", "signed_at"):
                if col in frame:
                    frame[f"{col}_utc"] = pd.to_datetime(frame[col], unit="s", utc=True)
            path = out_dir / f"{name}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_json(path, orient="records", date_format="iso")
            click.echo(f"{path}: {len(frame)} rows")
    finally:
        outbox.close()


@main.command()
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the keystore (JSON, mode 0600).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the passphrase from this file (else $POWERHIVE_ORACLE_PASSPHRASE, else prompt).",
)
def keygen(out_path: Path, passphrase_file: Path | None) -> None:
    """Create a new unit key as an encrypted keystore (the `ape accounts` format)."""
    import os

    from oracle.keystore import create_keystore

    if passphrase_file is not None:
        passphrase = passphrase_file.read_text().rstrip("\r\n")
    elif "POWERHIVE_ORACLE_PASSPHRASE" in os.environ:
        passphrase = os.environ["POWERHIVE_ORACLE_PASSPHRASE"]
    elif sys.stdin.isatty():
        passphrase = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True)
    else:
        raise KeystoreError("no passphrase: use --passphrase-file or $POWERHIVE_ORACLE_PASSPHRASE")
    address = create_keystore(out_path, passphrase)
    click.echo(f"{address} {out_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
