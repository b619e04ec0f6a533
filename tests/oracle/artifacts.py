"""Compiled contracts for the oracle's tests, with or without Ape.

The oracle's tests deploy contracts with plain web3 and need only each contract's ABI and
deployment bytecode. Under `ape test` they come from Ape's `project` (which compiles what
changed). In the oracle's own venv (Python 3.13, no contract toolchain: `make test-oracle`)
they are read from `.build/__local__.json`, the manifest `ape compile` writes, after checking
that it was compiled from the sources on disk: a stale or missing manifest stops the run with
one line saying to run `ape compile` (`make lint`) first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.oracle.rig import REPO

MANIFEST = REPO / ".build" / "__local__.json"

# name -> (abi, deployment bytecode)
Artifact = tuple[list[dict[str, Any]], str]
Compiled = Callable[[str], Artifact]


class StaleBuild(Exception):
    """`.build` is missing or does not match `contracts/`."""


def from_ape(project: Any) -> Compiled:
    """Artifacts from Ape's project (compiled on first access if a source changed)."""

    def lookup(name: str) -> Artifact:
        ct = getattr(project, name).contract_type
        abi = [item.model_dump(mode="json", by_alias=True) for item in ct.abi]
        return abi, ct.deployment_bytecode.bytecode

    return lookup


def from_build(manifest: Path = MANIFEST, root: Path = REPO) -> Compiled:
    """Artifacts from Ape's manifest on disk; refuses one whose sources differ from disk."""
    hint = "run `ape compile` (or `make lint`) in the 3.11 .venv first"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise StaleBuild(f"{manifest} not found: {hint}") from None
    sources = data.get("sources", {})
    on_disk = {
        str(p.relative_to(root))
        for p in (root / "contracts").rglob("*")
        if p.suffix in {".vy", ".vyi"}
    }
    missing = sorted(on_disk - set(sources))
    changed = sorted(
        path
        for path, source in sources.items()
        if not (root / path).is_file() or (root / path).read_text() != source.get("content")
    )
    if missing or changed:
        raise StaleBuild(f"{manifest} is stale ({', '.join(missing + changed)}): {hint}")
    types = data["contractTypes"]

    def lookup(name: str) -> Artifact:
        ct = types[name]
        return ct["abi"], ct["deploymentBytecode"]["bytecode"]

    return lookup
