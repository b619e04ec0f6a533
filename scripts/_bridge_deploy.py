"""The bridge's part of a deployment (issue 12, item 6), shared by `ape run deploy` and the
two-chain `ape run demo`. Not an `ape run` entry point.

Order (peer wiring needs both chains' addresses):

1. chain A (no peer yet): the protocol and an unpeered `Bridge(council, chain.id)`; an unpeered
   Bridge with no relayer set and no token refuses every transfer.
2. chain B: the protocol, its Bridge, and one `WrappedToken` per home token of A (ENT, eEuro)
   whose only minter is B's Bridge; then B's Council votes: `set_peer(A, bridge A)`,
   `list_token(wrapped, home token on A, home=False)`, `set_limit` (both directions) per token,
   `set_relayers(relayers, M)`.
3. chain A: A's Council votes the mirror image (`set_peer(B, bridge B)`,
   `list_token(home token, wrapped on B, home=True)`, limits, the same relayer set and M).

Each deployment file gets a `bridge` section next to its contracts (ignored by readers that do
not know it, `oracle.deployments` included): the peer chain, Bridge and network, the relayer
set and M, and each bridged token's local and peer address.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ape import chain, project
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from ape.logging import logger
from eth_utils import is_hex_address

from oracle.deployments import Deployment, load_deployment, write_deployment
from scripts._bridge import INBOUND, OUTBOUND
from scripts._calls import encode_call
from scripts._protocol import Protocol, deploy_protocol, pass_vote

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class BridgedToken:
    """A token of chain A bridged to chain B: its protocol contract on A and its wrapped form."""

    name: str  # "ENT", the key of `--limit` and of the demo's tables
    contract: str  # the home token's record on A
    wrapped: str  # the WrappedToken's record on B
    wrapped_name: str  # String[25]
    wrapped_symbol: str  # String[5]
    decimals: int
    unit: str  # human unit of one token
    capacity: int  # default bucket, in tokens, refilled over a day
    max_per_transfer: int  # default per-transfer maximum, in tokens


# ENT (1 ENT = 1 kWh) and eEuro are home on chain A; defaults sized for a small community.
BRIDGED_TOKENS = (
    BridgedToken(
        "ENT", "EnergyLedger", "WrappedENT", "Wrapped PowerHive Energy", "wENT", 18, "kWh",
        10_000, 1_000,
    ),
    BridgedToken(
        "eEuro", "EEuro", "WrappedEEuro", "Wrapped PowerHive eEuro", "wEEUR", 6, "EUR",
        100_000, 10_000,
    ),
)  # fmt: skip
TOKENS_BY_NAME = {t.name: t for t in BRIDGED_TOKENS}

# Anvil's development accounts 7, 8 and 9 (the well-known mnemonic; their keys are public, so
# they are the default only when both chains are Anvil nodes), and M = 2.
LOCAL_RELAYER_INDICES = (7, 8, 9)
LOCAL_THRESHOLD = 2


class WiringError(Exception):
    """A bridge deployment that cannot go ahead; its message is the one-line reason."""


@dataclass(frozen=True)
class Limit:
    """A token bucket in tokens: `capacity` at once, refilled in a day, `max_per_transfer`."""

    capacity: int
    max_per_transfer: int

    def base_units(self, decimals: int) -> tuple[int, int, int]:
        capacity = self.capacity * 10**decimals
        return capacity, capacity // SECONDS_PER_DAY, self.max_per_transfer * 10**decimals


@dataclass
class BridgeConfig:
    relayers: list[str]
    threshold: int
    limits: dict[str, Limit] = field(default_factory=dict)

    def __post_init__(self):
        # The Bridge wants signers ascending; the set itself is stored in the order given,
        # sorted here so both chains record the same list.
        self.relayers = sorted({str(r) for r in self.relayers}, key=lambda a: int(a, 16))
        if not 1 <= self.threshold <= len(self.relayers):
            raise WiringError(
                f"threshold M = {self.threshold} needs 1 <= M <= {len(self.relayers)} "
                "distinct relayers"
            )
        for token in BRIDGED_TOKENS:
            self.limits.setdefault(token.name, Limit(token.capacity, token.max_per_transfer))

    def limit(self, token: BridgedToken) -> tuple[int, int, int]:
        return self.limits[token.name].base_units(token.decimals)


def parse_limit(text: str) -> tuple[str, Limit]:
    """`ENT=10000/1000`: a bucket of 10,000 kWh refilled per day, at most 1,000 per transfer."""
    try:
        name, value = text.split("=", 1)
        capacity, _, maximum = value.partition("/")
        limit = Limit(int(capacity), int(maximum) if maximum else int(capacity))
    except ValueError:
        raise WiringError(
            f"--limit {text!r}: expected TOKEN=CAPACITY[/MAX], e.g. ENT=10000/1000"
        ) from None
    if name not in TOKENS_BY_NAME:
        raise WiringError(f"--limit {text!r}: unknown token (one of {', '.join(TOKENS_BY_NAME)})")
    if not 0 < limit.max_per_transfer <= limit.capacity:
        raise WiringError(f"--limit {text!r}: needs 0 < MAX <= CAPACITY")
    return name, limit


def deploy_bridge(protocol: Protocol) -> ContractInstance:
    """The unpeered Bridge of this chain, governed by its Council (step 1 above)."""
    bridge = protocol.deployer.deploy(project.Bridge, protocol.Council.address, chain.chain_id)
    protocol.contracts["Bridge"] = bridge
    logger.info(f"Bridge deployed at {bridge.address} (unpeered)")
    return bridge


def deploy_wrapped(protocol: Protocol) -> dict[str, ContractInstance]:
    """One WrappedToken per bridged token, minted only by this chain's Bridge."""
    bridge, wrapped = protocol.contracts["Bridge"], {}
    for token in BRIDGED_TOKENS:
        instance = protocol.deployer.deploy(
            project.WrappedToken,
            token.wrapped_name,
            token.wrapped_symbol,
            token.decimals,
            token.wrapped_name,
            bridge.address,
        )
        protocol.contracts[token.wrapped] = instance
        wrapped[token.name] = instance
        logger.info(f"{token.wrapped} deployed at {instance.address}")
    return wrapped


@dataclass
class Side:
    """One chain's view for the wiring votes: its Council, Bridge and bridged tokens."""

    chain_id: int
    council: ContractInstance
    bridge: ContractInstance
    tokens: dict[str, str]  # token name -> local address (home token on A, wrapped on B)
    home: bool  # True on chain A


def check_sole_voter(council: ContractInstance, account: AccountAPI, chain_id: int) -> None:
    """The wiring passes each vote with the deploying account's YES: it must be the Council's
    only voter (as right after `ape run deploy`). Checked before anything is sent."""
    voters = list(council.voters())
    if voters != [account.address]:
        raise WiringError(
            f"the Council on chain {chain_id} has voters {voters}: the bridge wiring needs "
            f"{account.address} to be its only voter (docs/bridge.md, 'Deploying two "
            "communities', lists the votes to pass by hand)"
        )


def wire(side: Side, peer: Side, config: BridgeConfig, voters: list[AccountAPI]) -> int:
    """Council votes on `side` (the active chain): peer, token list, limits, relayers, each
    passed by `voters` voting YES in turn (the deploy script: its one sole voter).
    Returns the number of votes passed."""
    votes = 0

    def vote(method: str, *args):
        nonlocal votes
        target = side.bridge
        pass_vote(side.council, target, encode_call(target, method, *args), voters)
        votes += 1

    vote("set_peer", peer.chain_id, peer.bridge.address)
    for token in BRIDGED_TOKENS:
        local, remote = side.tokens[token.name], peer.tokens[token.name]
        vote("list_token", local, remote, side.home)
        capacity, rate, maximum = config.limit(token)
        for direction in (OUTBOUND, INBOUND):
            vote("set_limit", local, direction, capacity, rate, maximum)
    vote("set_relayers", config.relayers, config.threshold)
    logger.info(f"Bridge on chain {side.chain_id} wired to chain {peer.chain_id} ({votes} votes)")
    return votes


def bridge_section(side: Side | None, peer: Side | None, peer_network: str | None, config):
    """The `bridge` section of a deployment file (peer None: an unpeered Bridge)."""
    if side is None or peer is None:
        return {"peer": None, "relayers": [], "threshold": 0, "tokens": []}
    return {
        "peer": {
            "chain_id": peer.chain_id,
            "bridge": peer.bridge.address,
            "network": peer_network,
        },
        "relayers": list(config.relayers),
        "threshold": config.threshold,
        "tokens": [
            {
                "name": token.name,
                "local": side.tokens[token.name],
                "peer": peer.tokens[token.name],
                "home": side.home,
            }
            for token in BRIDGED_TOKENS
        ],
    }


@dataclass(frozen=True)
class BridgedDeployment(Deployment):
    """A deployment file with the `bridge` section (schema 1 plus one key)."""

    bridge: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["bridge"] = self.bridge
        return data


def write_bridged(
    deployment: Deployment, section: dict, directory: Path, *, force: bool, backup: bool = False
) -> Path:
    fields = {name: getattr(deployment, name) for name in Deployment.__dataclass_fields__}
    return write_deployment(
        BridgedDeployment(**fields, bridge=section), directory, force=force, backup=backup
    )


def read_peer_file(path: Path) -> tuple[Deployment, dict]:
    """The peer chain's deployment (validated by `oracle.deployments`) and its bridge section."""
    try:
        chain_id = int(json.loads(Path(path).read_text())["chain_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WiringError(f"--peer {path}: not a deployment file ({exc})") from None
    if Path(path).name != f"{chain_id}.json":
        # Checked first: the loader reads <chain_id>.json next to it, which may be another file.
        raise WiringError(f"--peer {path}: a deployment file is named <chain_id>.json")
    deployment = load_deployment(Path(path).parent, chain_id)
    for token in BRIDGED_TOKENS:
        deployment.contract(token.contract)
    deployment.contract("Bridge")
    section = json.loads(Path(path).read_text()).get("bridge") or {}
    return deployment, section


def is_anvil() -> bool:
    """Whether the active chain is an Anvil node (development keys are harmless there)."""
    return "anvil" in str(chain.provider.web3.client_version).lower()


def relayer_config(relayers, threshold, limits, *, local: bool) -> BridgeConfig:
    """The relayer set and M from the options. With no `--relayer`, Anvil's accounts 7-9 and
    M = 2, only when `local` (both chains are Anvil nodes): their keys are public, so on a
    real network they would let anyone mint. Without `--threshold`, M is a majority of N."""
    from ape import accounts

    for address in relayers:
        if not is_hex_address(address):
            raise WiringError(f"--relayer {address!r}: not an address")
    if not relayers:
        if not local:
            raise WiringError(
                "--relayer is required on this network: the default relayers are Anvil's "
                "development accounts, whose keys are public (used only when both chains "
                "are Anvil nodes)"
            )
        relayers = [accounts.test_accounts[i].address for i in LOCAL_RELAYER_INDICES]
        threshold = LOCAL_THRESHOLD if threshold is None else threshold
    if threshold is None:
        threshold = len(set(relayers)) // 2 + 1
    return BridgeConfig(list(relayers), threshold, dict(limits))


def side_of_protocol(protocol: Protocol, *, home: bool) -> Side:
    names = {t.name: (t.contract if home else t.wrapped) for t in BRIDGED_TOKENS}
    return Side(
        chain_id=chain.chain_id,
        council=protocol.Council,
        bridge=protocol.Bridge,
        tokens={name: protocol.contracts[record].address for name, record in names.items()},
        home=home,
    )


def side_of_deployment(deployment: Deployment) -> Side:
    """Chain A's side from its deployment file, with the active provider on chain A."""
    if chain.chain_id != deployment.chain_id:
        raise WiringError(
            f"the peer network is chain {chain.chain_id}, its file is for chain "
            f"{deployment.chain_id}"
        )
    records = {name: deployment.contract(name).address for name in ("Council", "Bridge")}
    for name, address in records.items():
        if not chain.provider.get_code(address):
            raise WiringError(f"chain {deployment.chain_id} has no {name} at {address}")
    side = Side(
        chain_id=deployment.chain_id,
        council=project.Council.at(records["Council"]),
        bridge=project.Bridge.at(records["Bridge"]),
        tokens={t.name: deployment.contract(t.contract).address for t in BRIDGED_TOKENS},
        home=True,
    )
    if side.bridge.peer_chain() != 0:
        raise WiringError(
            f"the Bridge on chain {side.chain_id} is already peered with chain "
            f"{side.bridge.peer_chain()} ({side.bridge.peer_bridge()})"
        )
    return side


def deploy_remote(
    account: AccountAPI,
    home: Side,
    home_network,
    config: BridgeConfig,
    *,
    treasury: str | None = None,
) -> tuple[Protocol, Side]:
    """Steps 2 and 3 with the active provider on chain B: the protocol, its Bridge and the
    wrapped tokens on B, B's votes, then A's votes inside `home_network` (a provider context
    for chain A, entered again for the votes)."""
    protocol = deploy_protocol(account, treasury=treasury)
    deploy_bridge(protocol)
    deploy_wrapped(protocol)
    remote = side_of_protocol(protocol, home=False)
    wire(remote, home, config, [account])
    with home_network:
        wire(home, remote, config, [account])
    return protocol, remote
