"""The bridge encoding for the scripts and tests: re-exported from `oracle.bridge_codec`, the
one implementation the relayer service uses too (the `oracle` package never imports
`scripts/`)."""

from oracle.bridge_codec import (
    ACTION_CANCEL,
    ACTION_DELIVERED,
    ACTION_REFUND,
    ACTION_UNLOCK,
    ATTESTATION_TYPEHASH,
    DOMAIN_TYPEHASH,
    INBOUND,
    OUTBOUND,
    TRANSFER_FIELDS,
    TRANSFER_TYPE,
    TRANSFER_TYPEHASH,
    Transfer,
    attestation,
    digest,
    sign,
    sign_digest,
    transfer_from_event,
)

__all__ = [
    "ACTION_CANCEL",
    "ACTION_DELIVERED",
    "ACTION_REFUND",
    "ACTION_UNLOCK",
    "ATTESTATION_TYPEHASH",
    "DOMAIN_TYPEHASH",
    "INBOUND",
    "OUTBOUND",
    "TRANSFER_FIELDS",
    "TRANSFER_TYPE",
    "TRANSFER_TYPEHASH",
    "Transfer",
    "attestation",
    "digest",
    "sign",
    "sign_digest",
    "transfer_from_event",
]
