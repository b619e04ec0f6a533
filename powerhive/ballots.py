"""Council ballots in human terms: which contract, which function, which arguments.

The Council keeps a ballot's target and selector only (`open_ballots`); the calldata is in the
`BallotOpened` event of its key (the key is `keccak256(target ++ calldata)`, so every opening
of one key carries the same calldata). `decode_call` turns (target, calldata) into the
deployment's contract name, the function and its arguments, formatted with the kinds of
`powerhive.actions` (kWh, EUR/kWh, fractions, durations, named addresses); a call the
catalog does not name (say `transfer_ownership`) is decoded from the ABI alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from oracle.deployments import Deployment
from powerhive.actions import BY_FUNCTION, Decimals, format_arg, kinds_of
from powerhive.client import names_at
from powerhive.errors import BallotError

VOTE_NAMES = {0: "-", 1: "YES", 2: "NO"}
_CODEC = Web3()  # offline: only for ABI decoding


@dataclass(frozen=True)
class DecodedCall:
    target: str
    contract: str | None
    function: str | None
    args: tuple[tuple[str, str], ...]
    action: str | None  # the `powerhive propose` name, if any
    data: bytes
    note: str = ""

    def describe(self) -> str:
        if self.function is None:
            return f"{self.target}: unknown call 0x{self.data[:4].hex()} ({self.note})"
        args = ", ".join(f"{k}={v}" for k, v in self.args)
        where = self.contract or self.target
        text = f"{where}.{self.function}({args})"
        return f"{text} [{self.note}]" if self.note else text


@dataclass(frozen=True)
class Ballot:
    key: str
    call: DecodedCall
    opener: str
    yes: int
    no: int
    voters: int
    expires_at: int
    expired: bool
    votes: dict[str, str] = field(default_factory=dict)  # voter -> YES / NO / -

    @property
    def short_id(self) -> str:
        return self.key[:10]


def action_key(target: str, data: bytes) -> str:
    """The Council's key of the action `target.call(data)`."""
    return "0x" + keccak(bytes.fromhex(to_checksum_address(target)[2:]) + bytes(data)).hex()


def address_namer(deployment: Deployment, labels: dict[str, str] | None = None):
    """`address -> "0x... (Council)"`: a deployment name, else a label (a voter), else bare."""
    labels = {k.lower(): v for k, v in (labels or {}).items()}

    def name(address: str) -> str:
        checksummed = to_checksum_address(address)
        names = names_at(deployment, checksummed)
        label = names[0] if names else labels.get(checksummed.lower())
        return f"{checksummed} ({label})" if label else checksummed

    return name


def decode_call(
    deployment: Deployment,
    target: str,
    data: bytes,
    *,
    decimals: Decimals | None = None,
    names: Callable[[str], str] | None = None,
) -> DecodedCall:
    """(target, calldata) -> contract, function and human arguments, by the deployment's ABIs."""
    data = bytes(data)
    target = to_checksum_address(target)
    decimals = decimals or Decimals(deployment)
    names = names or address_namer(deployment)
    known = names_at(deployment, target)
    note = ""
    found = _find_function(deployment, known, data)
    if found is None:
        # Not one of the deployment's addresses (another order book the Beekeeper created,
        # say): any ABI of the deployment with this selector decodes it.
        others = [n for n in deployment.contracts if n not in known]
        found = _find_function(deployment, others, data)
        if found is None:
            return DecodedCall(
                target,
                known[0] if known else None,
                None,
                (),
                None,
                data,
                ("no ABI of the deployment has this selector"),
            )
        note = f"not a contract of the deployment; decoded with the {found[0]} ABI"
    abi_name, fn_name, values = found
    contract = known[0] if known else None
    action = BY_FUNCTION.get((abi_name, fn_name))
    kinds = kinds_of(abi_name, fn_name)
    args = []
    for arg, value in values.items():
        kind = kinds.get(arg) or _kind_of_value(value)
        text = format_arg(kind, value, args=values, target=target, dec=decimals, names=names)
        args.append((arg, text))
    return DecodedCall(
        target, contract, fn_name, tuple(args), action.name if action else None, data, note
    )


def _find_function(deployment: Deployment, names: list[str], data: bytes):
    for name in names:
        contract = _CODEC.eth.contract(abi=deployment.contracts[name].abi)
        try:
            fn, values = contract.decode_function_input(data)
        except ValueError:
            continue
        return name, fn.fn_name, dict(values)
    return None


def _kind_of_value(value) -> str:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return "address"
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, str) and len(v) == 42 for v in value)
    ):
        return "addresses"
    return "raw"


def open_ballots(client, labels: dict[str, str] | None = None) -> list[Ballot]:
    """Every open ballot of the Council (expired ones not yet closed included), decoded."""
    from powerhive.actions import chain_lookup

    council = client.contract("Council")
    views = client.call(council.functions.open_ballots())
    if not views:
        return []
    wanted = {"0x" + bytes(v[0]).hex() for v in views}
    data_of: dict[str, bytes] = {}
    for log in client.events("Council", "BallotOpened"):
        key = "0x" + bytes(log["args"]["key"]).hex()
        if key in wanted:
            data_of[key] = bytes(log["args"]["data"])
    voters = client.call(council.functions.voters())
    decimals = Decimals(client.deployment, lookup=chain_lookup(client))
    names = address_namer(client.deployment, labels)
    ballots = []
    for v in views:
        key_bytes, target, _selector, opener, yes, no, count, expires_at, expired = v
        key = "0x" + bytes(key_bytes).hex()
        data = data_of.get(key)
        if data is None:
            raise BallotError(f"ballot {key}: no BallotOpened event found since the deployment")
        call = decode_call(client.deployment, target, data, decimals=decimals, names=names)
        votes = {
            voter: VOTE_NAMES[client.call(council.functions.vote_of(key_bytes, voter))]
            for voter in voters
        }
        ballots.append(Ballot(key, call, opener, yes, no, count, expires_at, expired, votes))
    return ballots


def find_ballot(ballots: list[Ballot], ident: str) -> Ballot:
    """The ballot whose key is `ident` or starts with it (at least 6 hex digits)."""
    raw = ident.strip().lower()
    digits = raw.removeprefix("0x")
    if len(digits) < 6 or any(c not in "0123456789abcdef" for c in digits):
        raise BallotError(f"ballot id {ident!r}: give at least 6 hex digits of its key")
    matches = [b for b in ballots if b.key.lower().removeprefix("0x").startswith(digits)]
    if not matches:
        raise BallotError(f"no open ballot with id {ident} (powerhive ballots lists them)")
    if len(matches) > 1:
        raise BallotError(f"ballot id {ident} is ambiguous: give more digits")
    return matches[0]
