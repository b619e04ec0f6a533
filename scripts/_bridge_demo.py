"""The two-community part of `ape run demo` (issue 12, item 6): ENT and eEuro from community
A (the demo's chain) to community B and back, through three `oracle relay` processes (2-of-3).

What it does, in order:

1. deploys A's Bridge next to the demo's protocol (what `ape run deploy` does on one chain);
2. starts a second Anvil (chain B, chain id 4243: the `powerhive-poa-b` network of
   ape-config.yaml) and deploys there what `ape run deploy --peer` deploys: the protocol, its
   Bridge, the wrapped ENT and eEuro minted only by that Bridge, and B's Council votes;
3. A's Council votes the mirror image, and both chains' deployment files are written
   (`out/bridge/deployments/<chain_id>.json`, with their `bridge` sections);
4. starts three relayers, each with its own key, state and `/attestations` endpoint, in the
   configuration format of `deploy/relayer.toml`;
5. locks ENT and eEuro on A for the same holder on B, waits until they are unlocked on B and
   marked on A, burns part of the wrapped tokens on B and waits for their release on A,
   printing both sides' balances and supplies after each step, with the invariant
   "locked at home == wrapped supply remote + in flight".

Every process it starts (Anvil B, the relayers) is stopped when it returns, also on an error,
Ctrl-C or SIGTERM. Not an `ape run` entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape import chain, networks
from eth_account import Account
from rich.console import Console
from rich.table import Table
from web3 import Web3

from oracle.config import to_toml
from powerhive.units import format_units
from scripts._bridge_deploy import (
    BRIDGED_TOKENS,
    BridgeConfig,
    bridge_section,
    deploy_bridge,
    deploy_wrapped,
    side_of_protocol,
    wire,
    write_bridged,
)
from scripts._protocol import Protocol, deploy_protocol

CHAIN_B = 4243
NETWORK_B = "powerhive-poa-b"
THRESHOLD = 2
PASSPHRASE_ENV = "POWERHIVE_RELAYER_PASSPHRASE"
# The keystores are demo files under out/ (the keys are Anvil's public development keys).
PASSPHRASE = "powerhive demo relayer"
DELIVERY_TIMEOUT_S = 120.0
EVENTS = ("TransferSent", "TransferUnlocked")


class DemoError(Exception):
    """The bridge part could not go on; its message is the one-line reason."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (so the `finally` blocks stop the processes)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def anvil_b(accounts: int) -> Iterator[str]:
    """Chain B: an Anvil of our own on a free port, with the demo's development accounts."""
    anvil = shutil.which("anvil", path=str(Path(sys.executable).parent)) or shutil.which("anvil")
    if anvil is None:
        raise DemoError("anvil not found (run `make install`)")
    port = _free_port()
    command = [anvil, "--port", str(port), "--chain-id", str(CHAIN_B), "--hardfork", "cancun"]
    command += ["--accounts", str(accounts), "--silent"]
    # Own session: a Ctrl-C in the terminal reaches the demo, which stops Anvil itself.
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 5}))
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise DemoError(f"anvil for chain B exited with status {proc.returncode}")
            with contextlib.suppress(Exception):
                if w3.eth.chain_id == CHAIN_B:
                    break
            if time.monotonic() > deadline:
                raise DemoError(f"anvil for chain B not answering on {url}")
            time.sleep(0.1)
        yield url
    finally:
        _stop(proc)


@dataclass
class RelayerProcess:
    name: str
    proc: subprocess.Popen
    log: Path

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise DemoError(
                f"relayer {self.name} exited with status {self.proc.returncode}: "
                + " | ".join(tail)
            )


@contextlib.contextmanager
def relayers(keys: list[Any], chains: list[dict[str, Any]], root: Path) -> Iterator[list]:
    """One `oracle relay` per key (2-of-3: each lists the other two as peers), configured as
    in deploy/relayer.toml; all of them stopped on the way out."""
    ports = [_free_port() for _ in keys]
    started: list[RelayerProcess] = []
    env = {**os.environ, PASSPHRASE_ENV: PASSPHRASE, "PYTHONUNBUFFERED": "1"}
    try:
        for i, key in enumerate(keys):
            home = root / f"relayer{i}"
            home.mkdir(parents=True)
            keystore = home / "keystore.json"
            # A cheap scrypt (demo keys): a real relayer's keystore uses the default cost.
            keystore.write_text(
                json.dumps(Account.encrypt(key, PASSPHRASE, kdf="scrypt", iterations=2**4))
            )
            config = {
                "service": {
                    "state_dir": str(home / "state"),
                    "poll_s": 0.2,
                    "http_host": "127.0.0.1",
                    "http_port": ports[i],
                    "log_level": "INFO",
                    "log_format": "text",
                    "takeover_s": 3.0,
                    "retry_max_s": 2.0,
                },
                "relayer": {
                    "keystore": str(keystore),
                    "passphrase_env": PASSPHRASE_ENV,
                    "peers": [f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i],
                    "peer_timeout_s": 2.0,
                },
                "chains": chains,
            }
            path = home / "relayer.toml"
            path.write_text(to_toml(config))
            log = home / "relayer.log"
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "oracle", "relay", "--config", str(path)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            started.append(RelayerProcess(f"relayer{i}", proc, log))
        yield started
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.terminate()
        for r in started:
            _stop(r.proc)


@dataclass
class Book:
    """Both chains read through plain web3 at pinned blocks (A first, then B), so a relayer
    acting between the reads never shows as a broken invariant."""

    w3a: Web3
    w3b: Web3
    files: dict[int, dict[str, Any]]
    holder: str

    def contract(self, chain_id: int, name: str):
        record = self.files[chain_id]["contracts"][name]
        w3 = self.w3a if chain_id != CHAIN_B else self.w3b
        return w3.eth.contract(address=record["address"], abi=record["abi"])

    def snapshot(self, chain_a: int) -> dict[str, dict[str, int]]:
        n_a, n_b = self.w3a.eth.block_number, self.w3b.eth.block_number
        bridge_a, bridge_b = self.contract(chain_a, "Bridge"), self.contract(CHAIN_B, "Bridge")

        def ids(bridge, event: str, start: int, end: int) -> dict[str, Any]:
            logs = getattr(bridge.events, event)().get_logs(from_block=start, to_block=end)
            return {bytes(e.args.id).hex(): e.args for e in logs}

        start_a = self.files[chain_a]["contracts"]["Bridge"]["block"]
        start_b = self.files[CHAIN_B]["contracts"]["Bridge"]["block"]
        sent_a, unlocked_a = (ids(bridge_a, e, start_a, n_a) for e in EVENTS)
        sent_b, unlocked_b = (ids(bridge_b, e, start_b, n_b) for e in EVENTS)
        out = {}
        for token in BRIDGED_TOKENS:
            home = self.contract(chain_a, token.contract)
            wrapped = self.contract(CHAIN_B, token.wrapped)
            to_b = sum(
                a.amount
                for i, a in sent_a.items()
                if a.token == home.address and i not in unlocked_b
            )
            to_a = sum(
                a.amount
                for i, a in sent_b.items()
                if a.token == wrapped.address and i not in unlocked_a
            )
            out[token.name] = {
                "holder_a": home.functions.balanceOf(self.holder).call(block_identifier=n_a),
                "locked_a": home.functions.balanceOf(bridge_a.address).call(block_identifier=n_a),
                "holder_b": wrapped.functions.balanceOf(self.holder).call(block_identifier=n_b),
                "supply_b": wrapped.functions.totalSupply().call(block_identifier=n_b),
                "in_flight": to_b + to_a,
            }
        return out

    def print(self, console: Console, chain_a: int, title: str) -> bool:
        snap = self.snapshot(chain_a)
        table = Table(title=title)
        table.add_column("token")
        for col in (
            "holder on A",
            "locked in A's Bridge",
            "holder on B (wrapped)",
            "wrapped supply on B",
            "in flight",
            "locked == supply + in flight",
        ):
            table.add_column(col, justify="right")
        ok = True
        for token in BRIDGED_TOKENS:
            s = snap[token.name]
            holds = s["locked_a"] == s["supply_b"] + s["in_flight"]
            ok &= holds
            cells = ("holder_a", "locked_a", "holder_b", "supply_b", "in_flight")
            table.add_row(
                f"{token.name} ({token.unit})",
                *(format_units(s[c], token.decimals, min_places=2) for c in cells),
                str(holds),
            )
        console.print(table)
        return ok


def _wait_delivered(
    book: Book, chain_a: int, sent: list[tuple[int, Any]], procs: list[RelayerProcess]
) -> float:
    """Until every transfer in `sent` ((source chain, TransferSent args)) is unlocked on its
    destination and marked on its source; returns the seconds it took."""
    start = time.monotonic()
    while True:
        done = True
        for source, args in sent:
            dest = CHAIN_B if source == chain_a else chain_a
            src_bridge, dest_bridge = book.contract(source, "Bridge"), book.contract(dest, "Bridge")
            local = dest_bridge.functions.local_token(args.token).call()
            unlocked = dest_bridge.functions.is_processed(local, args.nonce).call()
            if not unlocked or src_bridge.functions.is_pending(args.token, args.nonce).call():
                done = False
        if done:
            return time.monotonic() - start
        for p in procs:
            p.check()
        if time.monotonic() - start > DELIVERY_TIMEOUT_S:
            raise DemoError(
                f"transfers not delivered within {DELIVERY_TIMEOUT_S:.0f} s (relayer logs: "
                f"{', '.join(str(p.log) for p in procs)})"
            )
        time.sleep(0.2)


def _sent(bridge, receipt) -> Any:
    (event,) = bridge.TransferSent.from_receipt(receipt)
    return event.event_arguments


class _Args(dict):
    __getattr__ = dict.__getitem__


def run_bridge_demo(
    protocol: Protocol,
    voters: list,
    people: dict,
    fund: Callable[[Any, int, int], None],
    out_dir: Path,
    console: Console,
) -> bool:
    """people: `holder` (moves the tokens), `relayers` (three development accounts).
    `fund(account, ent, eeuro)` gives an account ENT and eEuro on A. Returns whether the
    invariant held at every step."""
    try:
        with _sigterm_as_interrupt():
            return _run(protocol, voters, people, fund, out_dir, console)
    except DemoError as exc:
        console.print(f"[red]bridge demo: {exc}[/red]")
        return False


def _run(protocol, voters, people, fund, out_dir, console) -> bool:
    from ape import accounts

    holder, keys = people["holder"], people["relayers"]
    deployer = protocol.deployer
    chain_a = chain.chain_id
    provider = chain.provider
    choice_a = f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"
    root = (out_dir / "bridge").resolve()  # the relayer configs hold absolute paths
    shutil.rmtree(root, ignore_errors=True)  # the relayers' state of an earlier run
    deployments = root / "deployments"
    console.rule(f"Bridge: community A (chain {chain_a}) <-> community B (chain {CHAIN_B}), 2-of-3")

    config = BridgeConfig([k.address for k in keys], THRESHOLD)
    deploy_bridge(protocol)
    home = side_of_protocol(protocol, home=True)
    with contextlib.ExitStack() as stack:
        url_b = stack.enter_context(anvil_b(len(accounts.test_accounts)))
        choice_b = f"ethereum:{NETWORK_B}:{url_b}"
        w3b = Web3(Web3.HTTPProvider(url_b, request_kwargs={"timeout": 10}))
        # B's deployer starts at A's nonce, so no contract of B shares an address with one of
        # A (a peer wired to the wrong chain's address would show; Ape caches contracts by
        # address across networks).
        nonce_a = provider.web3.eth.get_transaction_count(deployer.address)
        w3b.provider.make_request("anvil_setNonce", [deployer.address, hex(nonce_a)])
        with networks.parse_network_choice(choice_b):
            protocol_b = deploy_protocol(deployer)
            deploy_bridge(protocol_b)
            deploy_wrapped(protocol_b)
            remote = side_of_protocol(protocol_b, home=False)
            votes_b = wire(remote, home, config, [deployer])
            deployment_b = protocol_b.to_deployment(f"ethereum:{NETWORK_B}:node")
        votes_a = wire(home, remote, config, voters)
        write_bridged(
            protocol.to_deployment(choice_a),
            bridge_section(home, remote, f"ethereum:{NETWORK_B}:node", config),
            deployments,
            force=True,
        )
        write_bridged(
            deployment_b, bridge_section(remote, home, choice_a, config), deployments, force=True
        )
        console.print(
            f"Bridge A {home.bridge.address} <-> Bridge B {remote.bridge.address}: "
            f"{votes_a} Council votes on A, {votes_b} on B; relayers {', '.join(config.relayers)}, "
            f"M = {config.threshold}; deployment files in {deployments}"
        )

        chains = [
            {"name": name, "rpc_url": url, "chain_id": cid, "deployments_dir": str(deployments)}
            | {"confirmations": 0, "rpc_timeout_s": 5.0, "tx_timeout_s": 30.0}
            for name, url, cid in (("A", provider.uri, chain_a), ("B", url_b, CHAIN_B))
        ]  # automining local chains: a block per transaction, no reorg to wait out
        procs = stack.enter_context(relayers([k.private_key for k in keys], chains, root))
        files = {
            cid: json.loads((deployments / f"{cid}.json").read_text()) for cid in (chain_a, CHAIN_B)
        }
        book = Book(provider.web3, w3b, files, holder.address)

        ent, eeuro = BRIDGED_TOKENS
        one = {t.name: 10**t.decimals for t in BRIDGED_TOKENS}
        fund(holder, 100 * one["ENT"], 200 * one["eEuro"])
        ok = book.print(console, chain_a, "Before: the holder's ENT and eEuro on A")

        # A -> B: lock on A (home), minted on B by two of the three relayers.
        sent = []
        bridge_a = protocol.Bridge
        for token, amount in ((ent, 60 * one["ENT"]), (eeuro, 80 * one["eEuro"])):
            contract = protocol.contracts[token.contract]
            contract.approve(bridge_a, amount, sender=holder)
            receipt = bridge_a.lock(contract, amount, CHAIN_B, holder, sender=holder)
            sent.append((chain_a, _Args(_sent(bridge_a, receipt))))
        ok &= book.print(console, chain_a, "Locked on A: 60 ENT and 80 eEuro to the holder on B")
        took = _wait_delivered(book, chain_a, sent, procs)
        ok &= book.print(
            console,
            chain_a,
            f"Unlocked (minted) on B and marked on A, {took:.1f} s after the locks",
        )

        # B -> A: burn part of the wrapped tokens on B, released on A.
        back = []
        with networks.parse_network_choice(choice_b):
            bridge_b = protocol_b.Bridge
            for token, amount in ((ent, 25 * one["ENT"]), (eeuro, 30 * one["eEuro"])):
                wrapped = protocol_b.contracts[token.wrapped]
                receipt = bridge_b.burn(wrapped, amount, chain_a, holder, sender=holder)
                back.append((CHAIN_B, _Args(_sent(bridge_b, receipt))))
        ok &= book.print(
            console, chain_a, "Burned on B: 25 wENT and 30 wEEUR back to the holder on A"
        )
        took = _wait_delivered(book, chain_a, back, procs)
        ok &= book.print(
            console, chain_a, f"Released on A and marked on B, {took:.1f} s after the burns"
        )
        for p in procs:
            p.check()
    verdict = "held at every step" if ok else "BROKEN"
    console.print(f"locked at home == wrapped supply remote + in flight: {verdict}")
    return ok
