"""`deployments/<chain_id>.json`: what `ape run deploy` writes and the off-chain services read.

Schema (version 1)::

    {
      "schema": 1,
      "chain_id": 31337,
      "network": "ethereum:local:foundry",
      "deployer": "0x...",
      "deploy_block": 1,
      "evm_version": "cancun",
      "contracts": {"EEuro": {"address": "0x...", "block": 1, "abi": [...]}, ...}
    }
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oracle.errors import DeploymentError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ContractRecord:
    address: str
    block: int
    abi: list[dict[str, Any]]


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    network: str
    deployer: str
    deploy_block: int
    evm_version: str
    contracts: dict[str, ContractRecord] = field(default_factory=dict)

    def contract(self, name: str) -> ContractRecord:
        try:
            return self.contracts[name]
        except KeyError:
            raise DeploymentError(
                f"deployment for chain {self.chain_id} has no contract {name!r}"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "chain_id": self.chain_id,
            "network": self.network,
            "deployer": self.deployer,
            "deploy_block": self.deploy_block,
            "evm_version": self.evm_version,
            "contracts": {
                name: {"address": rec.address, "block": rec.block, "abi": rec.abi}
                for name, rec in self.contracts.items()
            },
        }


def deployment_path(directory: Path, chain_id: int) -> Path:
    return Path(directory) / f"{chain_id}.json"


# The file holds addresses and ABIs, no secret: readable by every service user (the hardened
# oracle unit runs as its own user), writable by its owner.
FILE_MODE = 0o644


def backup_path(path: Path) -> Path:
    """Where `write_deployment(..., backup=True)` keeps the file it replaces:
    `<chain_id>.json.<UTC time>.bak` next to it, never overwritten."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    return candidate


def write_deployment(
    deployment: Deployment, directory: Path, *, force: bool = False, backup: bool = False
) -> Path:
    """Write atomically, mode 0644; refuse to replace an existing file unless `force`. With
    `backup`, a replaced file is first copied to `backup_path` (what `ape run deploy --force`
    does)."""
    path = deployment_path(directory, deployment.chain_id)
    if path.exists() and not force:
        raise DeploymentError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if backup and path.exists():
        shutil.copy2(path, backup_path(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        # mkstemp creates 0600, which a service running as another user cannot read.
        os.fchmod(fh.fileno(), FILE_MODE)
        json.dump(deployment.to_json(), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load_deployment(directory: Path, chain_id: int) -> Deployment:
    """Read `<directory>/<chain_id>.json`, raising DeploymentError with a one-line reason."""
    path = deployment_path(directory, chain_id)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeploymentError(
            f"no deployment for chain {chain_id}: {path} not found (run `ape run deploy`)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DeploymentError(f"cannot read {path}: {exc}") from None
    try:
        if raw["schema"] != SCHEMA_VERSION:
            raise DeploymentError(f"{path}: unsupported schema {raw['schema']}")
        if int(raw["chain_id"]) != chain_id:
            raise DeploymentError(f"{path}: written for chain {raw['chain_id']}, not {chain_id}")
        contracts = {
            name: ContractRecord(address=c["address"], block=int(c["block"]), abi=c["abi"])
            for name, c in raw["contracts"].items()
        }
        return Deployment(
            chain_id=chain_id,
            network=raw["network"],
            deployer=raw["deployer"],
            deploy_block=int(raw["deploy_block"]),
            evm_version=raw["evm_version"],
            contracts=contracts,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeploymentError(f"{path}: malformed deployment file ({exc!r})") from None
