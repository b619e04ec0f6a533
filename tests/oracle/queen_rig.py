"""Test rig for the queen (`oracle queen`): the hive market deployed with web3 from Ape's
compiled artifacts (HiveToken, a 6-decimals MockToken as the hive's coin, the Beekeeper behind
its proxy, HiveMarket), hives with workers, chain time moved period by period, and what the
market's `BatchSettled` events say was settled."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from oracle.config import to_toml
from oracle.deployments import ContractRecord, Deployment, write_deployment
from oracle.queen_store import QueenStore
from tests.oracle.rig import CHAIN_ID, Unit

HVT = 10**18
EUR = 10**6
PERIOD = 60  # the market's shortest period
STATE_FILE = "queen.sqlite"


def artifact(project, name: str) -> tuple[list[dict[str, Any]], str]:
    contract_type = getattr(project, name).contract_type
    abi = [item.model_dump(mode="json", by_alias=True) for item in contract_type.abi]
    return abi, contract_type.deployment_bytecode.bytecode


def _wait(w3: Web3, tx_hash) -> dict:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return receipt


@dataclass
class MarketRig:
    w3: Web3
    market: Any
    beekeeper: Any
    coin: Any
    hvt: Any
    governance: str
    owner: str
    deploy_block: int
    deployments_dir: Path

    def tx(self, fn, sender: str) -> dict:
        return _wait(self.w3, fn.transact({"from": sender}))

    def new_hive(self, queen: str, workers: int, max_wh: int = 2**32 - 1) -> Hive:
        """A hive of `workers` fresh meters of the owner, its market open (60 s periods) with
        `queen`, every meter enrolled with `max_wh`, the owner's deposit ample."""
        addresses = [Account.create().address for _ in range(workers)]
        for i, a in enumerate(addresses):
            self.tx(
                self.beekeeper.functions.add_meter(a, self.owner, f"Q-{a[2:10]}-{i}", "Acme"),
                self.governance,
            )
        receipt = self.tx(
            self.beekeeper.functions.create_hive(self.coin.address, addresses), self.owner
        )
        hive = self.beekeeper.events.HiveCreated().process_receipt(receipt)[0]["args"]["hive"]
        m = self.market.functions
        self.tx(m.open_market(hive, PERIOD, queen), self.owner)
        self.tx(m.enrol(hive, addresses, [max_wh] * workers), self.owner)
        self.tx(self.coin.functions.mint(self.owner, 10**6 * EUR), self.owner)
        self.tx(self.coin.functions.approve(self.market.address, 2**256 - 1), self.owner)
        self.tx(m.deposit(hive, 10**6 * EUR), self.owner)
        return Hive(self, hive, addresses)


def deploy_market(w3: Web3, project, deployments_dir: Path) -> MarketRig:
    governance, owner = w3.eth.accounts[0], w3.eth.accounts[1]

    def deploy(name: str, *args):
        abi, bytecode = artifact(project, name)
        receipt = _wait(
            w3,
            w3.eth.contract(abi=abi, bytecode=bytecode)
            .constructor(*args)
            .transact({"from": governance}),
        )
        return w3.eth.contract(address=receipt["contractAddress"], abi=abi), receipt

    hvt, first = deploy("HiveToken", governance)
    coin, _ = deploy("MockToken", "EUR", 6)
    ent, _ = deploy("MockToken", "ENT", 18)
    implementation, _ = deploy("Beekeeper")
    # The hives' order books are not used here: any contract stands in for the blueprint.
    init = implementation.encode_abi(
        "initialize", [governance, hvt.address, ent.address, ent.address, 1000 * HVT, 100 * HVT]
    )
    proxy, _ = deploy("BeekeeperProxy", implementation.address, init)
    beekeeper = w3.eth.contract(address=proxy.address, abi=implementation.abi)
    market, receipt = deploy("HiveMarket", beekeeper.address, governance)
    rig = MarketRig(
        w3, market, beekeeper, coin, hvt, governance, owner, first["blockNumber"], deployments_dir
    )
    rig.tx(beekeeper.functions.add_stablecoin(coin.address, "EUR"), governance)
    rig.tx(hvt.functions.transfer(owner, 10**6 * HVT), governance)
    rig.tx(hvt.functions.approve(beekeeper.address, 2**256 - 1), owner)
    write_deployment(
        Deployment(
            chain_id=CHAIN_ID,
            network="ethereum:local:anvil",
            deployer=governance,
            deploy_block=first["blockNumber"],
            evm_version="cancun",
            contracts={
                "HiveMarket": ContractRecord(market.address, receipt["blockNumber"], market.abi)
            },
        ),
        deployments_dir,
        force=True,
    )
    return rig


@dataclass
class Hive:
    rig: MarketRig
    id: int
    workers: list[str]

    @property
    def w3(self) -> Web3:
        return self.rig.w3

    def state(self):
        return self.rig.market.functions.market(self.id).call()

    def next_period(self) -> int:
        return self.state()[2]

    def current_period(self) -> int:
        return self.rig.market.functions.current_period(self.id).call()

    def close_period(self) -> int:
        """Mine a block at the end of the running period; returns the period that ended."""
        start, length = self.state()[0], self.state()[1]
        ended = self.current_period()
        target = start + (ended + 1) * length
        latest = self.w3.eth.get_block("latest")["timestamp"]
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [max(target, latest + 1)])
        self.w3.provider.make_request("evm_mine", [])
        return ended

    def settled(self) -> dict[int, list[tuple[str, int, int]]]:
        """Per period, every entry the market's `BatchSettled` events carry (in order)."""
        out: dict[int, list[tuple[str, int, int]]] = {}
        event = self.rig.market.events.BatchSettled
        for log in event.get_logs(
            from_block=self.rig.deploy_block, argument_filters={"hive": self.id}
        ):
            for word in log.args.entries:
                # Entries name workers by their index in the hive: `member` maps it back.
                index = word & (2**16 - 1)
                member = self.rig.market.functions.member((self.id << 16) | index).call()
                worker = Web3.to_checksum_address(member)
                entry = (worker, (word >> 192) & (2**32 - 1), (word >> 160) & (2**32 - 1))
                out.setdefault(log.args.period, []).append(entry)
        return out


@dataclass
class QueenSetup:
    """Everything needed to write a `queen.toml` for a test."""

    root: Path
    rpc_url: str
    deployments_dir: Path
    key: Unit
    hive: int
    workers: list[dict[str, Any]] = field(default_factory=list)
    service: dict[str, Any] = field(default_factory=dict)
    queen: dict[str, Any] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "queen-state"

    def write(self, name: str = "queen.toml") -> Path:
        data = {
            "service": {
                "state_dir": str(self.state_dir),
                "poll_s": 0.1,
                "http_enabled": False,
                "retry_max_s": 0.5,
                **self.service,
            },
            "chain": {
                "rpc_url": self.rpc_url,
                "chain_id": CHAIN_ID,
                "deployments_dir": str(self.deployments_dir),
                "keystore": str(self.key.keystore),
                "passphrase_env": "POWERHIVE_ORACLE_PASSPHRASE",
                "rpc_timeout_s": 2.0,
                "rpc_retries": 1,
                "settle_timeout_s": 5.0,
                "tx_timeout_s": 10.0,
                **self.chain,
            },
            "queen": {"hive": self.hive, **self.queen},
            "workers": self.workers,
        }
        path = self.root / name
        path.write_text(to_toml(data))
        return path

    def store(self) -> QueenStore | None:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return None
        return QueenStore(path, readonly=True)

    def _read(self, what):
        store = self.store()
        if store is None:
            return {}
        try:
            return what(store)
        except sqlite3.OperationalError:  # created, its tables not yet
            return {}
        finally:
            store.close()

    def baselines(self) -> dict:
        return self._read(lambda store: store.baselines())

    def txs(self) -> list[dict]:
        return self._read(lambda store: store.txs()) or []

    def periods(self) -> dict:
        return self._read(lambda store: {p.period: p for p in store.periods()})

    def final(self) -> set[int]:
        """The periods the outbox holds as final."""
        return {r["period"] for r in self._read(lambda s: s.export_rows()) or [] if r["final"]}
