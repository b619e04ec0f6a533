"""Calldata for the `ape run` scripts' Council votes and initializers, by the client library's
encoder (`powerhive.actions.calldata`), so the scripts and the CLI encode calls one way.

Not an `ape run` entry point (the leading underscore hides it from `ape run`).
"""

from __future__ import annotations

from ape.contracts import ContractInstance

from powerhive.actions import calldata


def encode_call(target: ContractInstance, method: str, *args) -> bytes:
    """The calldata of `target.method(*args)` by `powerhive.actions.calldata` (the encoder the
    CLI's proposals use); Ape accounts and contracts among `args` stand for their address."""
    abi = [item.model_dump(mode="json", by_alias=True) for item in target.contract_type.abi]
    return calldata(abi, method, *(_plain(a) for a in args))


def _plain(value):
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "address") and not isinstance(value, str | bytes):
        return str(value.address)
    return value
