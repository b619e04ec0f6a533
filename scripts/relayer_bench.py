"""`ape run relayer_bench` (or `python scripts/relayer_bench.py`): how many transfers per second
`oracle relay` delivers between two local Anvil chains, and in how much memory. Writes the
results into docs/bridge.md (between the benchmark markers).

Each run starts two Anvil chains (automine, plus an empty block every 0.1 s so the last
transfer gets its confirmation too), deploys the bridge pair with the test rig
(`tests/oracle/bridge_rig.py`), starts the relayer processes (keys in keystores of
`ape accounts`' default strength, scrypt N=2^18), then locks transfers on chain A from four
holders as fast as they go for `--duration` seconds. A transfer is delivered when chain B
unlocked it and chain A marked it transferred (two transactions, both attested). The rate is
the transfers delivered divided by the time from the first lock to the last mark; memory is
the relayers' VmRSS sampled every 0.5 s and their VmHWM at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from eth_account import Account

REPO = Path(__file__).resolve().parent.parent
# A dependency installs a top-level `tests` package into site-packages; ours must win.
sys.path.insert(0, str(REPO))

from tests.oracle import bridge_rig as br  # noqa: E402
from tests.oracle.bridge_rig import Miner  # noqa: E402
from tests.oracle.rig import PASSPHRASE, Anvil, machine, wait_for  # noqa: E402

DOC = REPO / "docs" / "bridge.md"
START, END = "<!-- relayer-bench:start -->", "<!-- relayer-bench:end -->"
TARGET_RATE, TARGET_RSS_MB = 20.0, 150.0


def _rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


def _strong_keys(n: int, root: Path) -> list:
    """Relayer keys in keystores as `ape accounts generate` writes them (scrypt N=2^18)."""
    out = []
    for _ in range(n):
        account = Account.create()
        path = root / f"relayer-{account.address[2:10]}.json"
        path.write_text(json.dumps(Account.encrypt(account.key, PASSPHRASE)))
        out.append((account, path))
    return out


def run(art, relayers: int, threshold: int, duration_s: float, log, timeout: float = 600) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = Anvil(chain_id=br.CHAIN_A).start()
        b = Anvil(chain_id=br.CHAIN_B).start()
        procs, setups = [], []
        try:
            keys = _strong_keys(relayers, root)
            pair = br.deploy_pair(a.w3(), b.w3(), art, [k[0] for k in keys], threshold, root)
            setups = br.relayer_setups(pair, keys, (a.url, b.url), root)
            for s in setups:
                s.service.update(poll_s=0.05, log_level="WARNING", takeover_s=10.0)
                for c in s.chains:  # the production defaults, not the tests' short ones
                    c.update(rpc_timeout_s=10.0, rpc_retries=3, tx_timeout_s=60.0)
            procs = [br.RelayerProcess(s.write(), s.root / "relayer.log").start() for s in setups]
            wait_for(
                lambda: all(
                    (h := s.health()) and all(c["up"] for c in h["chains"].values()) for s in setups
                ),
                120,
                "the relayers to start",
            )
            w3a = a.w3()
            holders = [pair.holder(i) for i in range(4)]
            for h in holders:
                pair.a.token.functions.approve(pair.a.bridge.address, 2**255).transact({"from": h})
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.5):
                    samples.extend(_rss(p.proc.pid)[0] for p in procs if p.alive())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            with Miner(a, b):
                locked = 0
                t0 = time.monotonic()
                lock = pair.a.bridge.functions.lock
                while time.monotonic() - t0 < duration_s:
                    holder = holders[locked % len(holders)]
                    lock(pair.a.token.address, br.ENT, br.CHAIN_B, holder).transact(
                        {"from": holder, "gas": 200_000}
                    )
                    locked += 1
                offered_s = time.monotonic() - t0
                log(f"{locked} locks in {offered_s:.1f} s; waiting for delivery")
                bridge_a = pair.a.bridge

                def completed() -> int:
                    return len(
                        bridge_a.events.TransferCompleted().get_logs(from_block=pair.a.deploy_block)
                    )

                wait_for(lambda: completed() >= locked, timeout, "every transfer delivered", 0.2)
                elapsed = time.monotonic() - t0
            stop.set()
            sampler.join()
            # Delivery also checked end to end: the wrapped supply equals what was locked.
            supply = pair.b.token.functions.totalSupply().call()
            assert supply == locked * br.ENT, (supply, locked)
            for first in range(0, locked, 256):
                pending = bridge_a.functions.locked_transfers(pair.a.token.address, first, 256)
                assert pending.call() == [], "a transfer still pending on A"
            hwm = max(_rss(p.proc.pid)[1] for p in procs)
            gas = [
                w3a.eth.get_transaction_receipt(e.transactionHash)["gasUsed"]
                for e in bridge_a.events.TransferCompleted().get_logs(
                    from_block=pair.a.deploy_block
                )[:20]
            ]
            return {
                "relayers": relayers,
                "threshold": threshold,
                "transfers": locked,
                "offered": locked / offered_s,
                "delivered": locked / elapsed,
                "elapsed": elapsed,
                "rss_median": statistics.median(samples),
                "rss_max": max(samples),
                "hwm": hwm,
                "mark_gas": statistics.median(gas),
            }
        finally:
            keep = os.environ.get("RELAYER_BENCH_LOGS")
            if keep:
                for s in setups:
                    target = Path(keep) / f"{threshold}-of-{relayers}-{s.root.name}.log"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text((s.root / "relayer.log").read_text())
            for p in procs:
                p.signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(30)
                except Exception:
                    p.kill()
            a.stop()
            b.stop()


def render(runs: list[dict], duration_s: float) -> str:
    def ok(good: bool) -> str:
        return "met" if good else "**missed**"

    slowest = min(runs, key=lambda r: r["delivered"])
    rss = max(r["rss_max"] for r in runs)
    hwm = max(r["hwm"] for r in runs)
    lines = [
        START,
        f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()} by "
        "`ape run relayer_bench`, two Anvil chains (cancun, automine) on the same machine._",
        "",
        "| target | result | |",
        "|---|---|---|",
        f"| delivery ≥ {TARGET_RATE:g} transfers/s | {slowest['delivered']:.1f} transfers/s "
        f"({slowest['threshold']}-of-{slowest['relayers']}, the slowest run) | "
        f"{ok(slowest['delivered'] >= TARGET_RATE)} |",
        f"| resident memory of `oracle relay` < {TARGET_RSS_MB:g} MB | {rss:.0f} MiB (max "
        f"VmRSS while relaying; VmHWM {hwm:.0f} MiB) | {ok(rss < TARGET_RSS_MB)} |",
        "",
        f"Locks offered for {duration_s:g} s as fast as one Python client sends them; a "
        "transfer counts once unlocked on B **and** marked on A (two attested transactions). "
        "Rate = transfers / (first lock to last mark), so a relayer that keeps up shows the "
        "offered rate.",
        "",
        "| relayers | transfers | offered/s | delivered/s | first lock to last mark | "
        "VmRSS median / max per relayer (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['threshold']}-of-{r['relayers']} | {r['transfers']} | {r['offered']:.1f} | "
            f"{r['delivered']:.1f} | {r['elapsed']:.1f} s | {r['rss_median']:.0f} / "
            f"{r['rss_max']:.0f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = DOC.read_text()
    if START not in text:
        text += "\n" + START + "\n" + END + "\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + section + tail)


@click.command(short_help="Benchmark the bridge relayer into docs/bridge.md")
@click.option("--duration", default=20.0, show_default=True, help="Seconds of locks offered.")
@click.option("--no-write", is_flag=True, help="Print the results, leave docs/bridge.md alone.")
def cli(duration: float, no_write: bool) -> None:
    from ape import project

    from tests.oracle.artifacts import from_ape

    art = br.artifacts(from_ape(project))
    runs = []
    for relayers, threshold in ((1, 1), (3, 2)):
        click.echo(f"{threshold}-of-{relayers}: locks for {duration:g} s", err=True)
        runs.append(run(art, relayers, threshold, duration, lambda m: click.echo(m, err=True)))
        click.echo(runs[-1], err=True)
    section = render(runs, duration)
    click.echo(section)
    if not no_write:
        write_doc(section)
        click.echo(f"wrote {DOC}", err=True)


if __name__ == "__main__":
    cli()
