"""Titanoboa for the stateful property tests: the same contract sources Ape compiles, run in
process by py-evm at hundreds of transactions a second instead of ~13 through Anvil.

- `deployer(name)` compiles `contracts/<name>.vy` once per process (snekmate resolves from
  site-packages, as it does for Ape) for the EVM version of `ape-config.yaml`, and returns a
  factory whose `.deploy(*args)` costs milliseconds, so every hypothesis example starts from
  fresh contracts instead of restoring a snapshot.
- `settings_for(machine)` gives the depth every machine runs at: `POWERHIVE_FUZZ_EXAMPLES`
  (default 500) examples of `POWERHIVE_FUZZ_STEPS` (default 50) steps; `make fuzz` runs 10x.
- `Depth` counts the examples and steps a machine really ran; the test asserts them and
  records them, and `tests/conftest.py` prints them at the end of the run (also under xdist).

Titanoboa's own pytest plugin is disabled (`-p no:boa_test` in pyproject.toml): it breaks
Ape's teardown, and these tests reset state by deploying afresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import boa
import yaml
from eth_utils import keccak
from hypothesis import HealthCheck, Phase, settings

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
EVM_VERSION = yaml.safe_load((REPO / "ape-config.yaml").read_text())["vyper"]["evm_version"]

EXAMPLES = int(os.environ.get("POWERHIVE_FUZZ_EXAMPLES", "500"))
STEPS = int(os.environ.get("POWERHIVE_FUZZ_STEPS", "50"))


@cache
def deployer(name: str):
    """The compiled contract `contracts/<name>.vy` (or `contracts/mocks/<name>.vy`)."""
    path = CONTRACTS / f"{name}.vy"
    if not path.exists():
        path = CONTRACTS / "mocks" / f"{name}.vy"
    return boa.load_partial(str(path), compiler_args={"evm_version": EVM_VERSION})


def accounts(n: int, tag: str) -> list[str]:
    """`n` fresh addresses named after a role (boa funds none: contract calls need no gas)."""
    return [boa.env.generate_address(f"{tag}{i}") for i in range(n)]


def settings_for(examples: int = EXAMPLES, steps: int = STEPS) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        # Shrinking a failure is worth the time; the database is not (CI starts from scratch).
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        # No "explain" phase: it traces every line while re-running a failure, which makes
        # py-evm 5-10x slower (a failing order book example took 313 s instead of 44 s).
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


def deploy_beekeeper(gov: str, treasury: str, hive_cost: int, meter_cost: int):
    """HVT (supply to `treasury`), the Beekeeper V1 behind its ERC-1967 proxy governed by `gov`
    (ENT and the stablecoins are mock tokens; order books from the real blueprint), and a V2
    implementation to upgrade to. Returns (hvt, v1, v2, beekeeper at the proxy's address)."""
    with boa.env.prank(gov):
        hvt = quiet(deployer("HiveToken").deploy(treasury))
        ent = deployer("MockToken").deploy("ENT", 18)
        blueprint = deployer("OrderBook").deploy_as_blueprint()
        v1 = deployer("Beekeeper").deploy()
        v2 = deployer("BeekeeperV2").deploy()
        init = v1.initialize.prepare_calldata(
            gov, hvt.address, ent.address, blueprint.address, hive_cost, meter_cost
        )
        proxy = deployer("BeekeeperProxy").deploy(v1.address, init)
    return hvt, v1, v2, quiet(deployer("Beekeeper").at(proxy.address))


@dataclass
class Depth:
    """How much a machine really exercised: examples, steps, and steps per rule."""

    examples: int = 0
    steps: int = 0

    def example(self) -> None:
        self.examples += 1

    def step(self) -> None:
        self.steps += 1

    def check_and_record(self, record_property, name: str, want_examples: int) -> None:
        """Fails if hypothesis ran fewer examples than asked (a filter or health check that
        quietly cut the run short), and records the depth for the end-of-run report."""
        record_property("fuzz_depth", f"{name}: {self.examples} examples, {self.steps} steps")
        assert self.examples >= want_examples, (
            f"{name}: only {self.examples} of {want_examples} examples ran"
        )


def quiet(contract):
    """`contract`, with a short repr: on every revert titanoboa 0.2.8 takes the reverted
    contract's repr, which dumps all its storage (slow, and pages of output on a failure)."""
    base = type(contract)
    contract.__class__ = type(
        f"Quiet{base.__name__}", (base,), {"__repr__": lambda self: f"<{self.address}>"}
    )
    return contract


class Slots:
    """Storage of a boa contract read straight from py-evm's state, without running the EVM.

    The invariants after every step sum balances, escrows and records over every holder: as
    view calls that is most of a machine's time (a view call costs ~10 ms of py-evm, a slot
    read ~10 us). `Slots(c).word("erc20.balanceOf", holder)` is the raw 256-bit word of
    `balanceOf[holder]`: the slot of a HashMap entry is keccak256(slot ++ key) as Vyper lays it
    out (value-type keys padded to 32 bytes), the variable's slot comes from the compiler's
    storage layout (module variables under their module's name). Each machine still calls the
    views themselves at the end of every example (`teardown`), so the views stay covered.
    """

    def __init__(self, contract):
        self.address = contract.address.canonical_address
        self.layout = contract.compiler_data.storage_layout["storage_layout"]

    def slot(self, path: str, *keys) -> int:
        node = self.layout
        for part in path.split("."):
            node = node[part]
        slot = node["slot"]
        for key in keys:
            slot = int.from_bytes(keccak(slot.to_bytes(32, "big") + _key_bytes(key)), "big")
        return slot

    def word(self, path: str, *keys) -> int:
        return boa.env.evm.vm.state.get_storage(self.address, self.slot(path, *keys))


def _key_bytes(key) -> bytes:
    if isinstance(key, int):
        return key.to_bytes(32, "big")
    if isinstance(key, bytes):
        return key.rjust(32, b"\0")
    return bytes.fromhex(str(key).removeprefix("0x")).rjust(32, b"\0")  # an address
