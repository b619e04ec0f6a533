"""The bridge's off-chain side of the protocol (SPEC section 6), shared by the relayer
(`oracle.relayer`), the tests and the gas report (through `scripts/_bridge.py`): transfer
ids and EIP-712 attestations computed independently of the contract, so a test comparing the
two catches an encoding mistake on either side.

A `Transfer` is the tuple of `TRANSFER_FIELDS`, in the order of the contract's struct; the
id is its EIP-712 struct hash. A relayer signs `Attestation(bytes32 id, uint8 action)` in the
domain of the Bridge where the action runs ("PowerHive Bridge", "1", the chain's real id).
"""

from __future__ import annotations

from typing import NamedTuple

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

TRANSFER_FIELDS = (
    ("source_chain", "uint256"),
    ("source_bridge", "address"),
    ("nonce", "uint256"),
    ("dest_chain", "uint256"),
    ("sender", "address"),
    ("recipient", "address"),
    ("token", "address"),
    ("amount", "uint256"),
    ("timestamp", "uint256"),
)
TRANSFER_TYPE = "Transfer(" + ",".join(f"{t} {n}" for n, t in TRANSFER_FIELDS) + ")"
TRANSFER_TYPEHASH = keccak(text=TRANSFER_TYPE)

ACTION_UNLOCK = 1
ACTION_CANCEL = 2
ACTION_DELIVERED = 3
ACTION_REFUND = 4

INBOUND = 1
OUTBOUND = 0


class Transfer(NamedTuple):
    source_chain: int
    source_bridge: str
    nonce: int
    dest_chain: int
    sender: str
    recipient: str
    token: str
    amount: int
    timestamp: int

    def id(self) -> bytes:
        """The transfer id: keccak256(abi.encode(TRANSFER_TYPEHASH, fields...))."""
        types = ["bytes32"] + [t for _, t in TRANSFER_FIELDS]
        values = [TRANSFER_TYPEHASH] + [
            to_checksum_address(v) if t == "address" else v
            for v, (_, t) in zip(self, TRANSFER_FIELDS, strict=True)
        ]
        return keccak(encode(types, values))

    def replace(self, **changes) -> Transfer:
        return self._replace(**changes)


def transfer_from_event(log, source_chain: int, source_bridge: str) -> Transfer:
    """The transfer a `TransferSent` event describes (its source chain and bridge are implicit:
    the chain and contract that emitted it)."""
    return Transfer(
        source_chain,
        str(source_bridge),
        int(log.nonce),
        int(log.dest_chain),
        str(log.sender),
        str(log.recipient),
        str(log.token),
        int(log.amount),
        int(log.timestamp),
    )


def attestation(chain_id: int, bridge: str, transfer_id: bytes, action: int) -> dict:
    """The EIP-712 typed data a relayer signs for `action` on `bridge`."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Attestation": [
                {"name": "id", "type": "bytes32"},
                {"name": "action", "type": "uint8"},
            ],
        },
        "primaryType": "Attestation",
        "domain": {
            "name": "PowerHive Bridge",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(str(bridge)),
        },
        "message": {"id": transfer_id, "action": action},
    }


DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH = keccak(text="Attestation(bytes32 id,uint8 action)")


def digest(chain_id: int, bridge: str, transfer_id: bytes, action: int) -> bytes:
    """The EIP-712 digest of an attestation, by hand (the same bytes `encode_typed_data`
    gives, without its per-call parsing: the stateful test signs thousands)."""
    domain = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text="PowerHive Bridge"),
                keccak(text="1"),
                chain_id,
                to_checksum_address(str(bridge)),
            ],
        )
    )
    struct = keccak(
        encode(["bytes32", "bytes32", "uint8"], [ATTESTATION_TYPEHASH, transfer_id, action])
    )
    return keccak(b"\x19\x01" + domain + struct)


def sign_digest(message_digest: bytes, keys) -> list[tuple]:
    """Signatures (v, r, s) of `keys` over a digest, ordered by signer address ascending."""
    signed = []
    for key in keys:
        sig = Account.unsafe_sign_hash(message_digest, key)
        signer = int(Account.from_key(key).address, 16)
        signed.append((signer, (sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"))))
    return [sig for _, sig in sorted(signed)]


def sign(chain_id: int, bridge: str, transfer_id: bytes, action: int, keys) -> list[tuple]:
    """Signatures (v, r, s) of `keys` over the attestation, ordered by signer address
    ascending, as `unlock` and the other attested calls require."""
    message = encode_typed_data(full_message=attestation(chain_id, bridge, transfer_id, action))
    signed = []
    for key in keys:
        sig = Account.sign_message(message, key)
        signer = int(Account.from_key(key).address, 16)
        signed.append((signer, (sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"))))
    return [sig for _, sig in sorted(signed)]
