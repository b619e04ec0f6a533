"""The bridge section of the gas report (issue 12): lock, burn, unlock with 1, 2, 3 and 5
attestations, on two Bridges of one local chain (see tests/bridge_fixtures.py for why one
chain stands in for two). Steady state: every row is a holder's second transfer, so no row
pays for a first-ever balance, bitmap word or bucket slot (those one-time costs are rows of
their own)."""

from __future__ import annotations

from ape import chain, project

from scripts._bridge import (
    ACTION_DELIVERED,
    ACTION_UNLOCK,
    INBOUND,
    OUTBOUND,
    sign,
    transfer_from_event,
)
from scripts._calls import encode_call
from scripts._gas import GasRow, row
from scripts._protocol import pass_vote

SECTION = "Bridge (lock/release, mint/burn)"
REMOTE_CHAIN = 4242
ENT = 10**18
CAPACITY = 10**9 * ENT


def _sent(receipt, source_chain, bridge):
    (log,) = [e for e in receipt.events if e.event_name == "TransferSent"]
    return transfer_from_event(log, source_chain, bridge.address)


def _sigs(bridge, transfer, action, relayers):
    return sign(
        chain.chain_id, bridge.address, transfer.id(), action, [r.private_key for r in relayers]
    )


def measure_bridge(deployer, holder, submitter, relayer_accounts) -> list[GasRow]:
    """`relayer_accounts`: at least five test accounts (they only sign)."""
    council = deployer.deploy(project.Council)
    home = deployer.deploy(project.Bridge, council, chain.chain_id)
    remote = deployer.deploy(project.Bridge, council, REMOTE_CHAIN)
    token = deployer.deploy(project.MockToken, "ENT", 18)
    wrapped = deployer.deploy(
        project.WrappedToken, "Wrapped ENT", "wENT", 18, "Wrapped ENT", remote
    )
    relayers = sorted(relayer_accounts[:5], key=lambda a: int(a.address, 16))

    def governed(target, method, *args):
        return pass_vote(council, target, encode_call(target, method, *args), [deployer])

    rows = [
        row(
            SECTION,
            "set_relayers, 3 relayers, through a Council vote (1 voter)",
            governed(home, "set_relayers", relayers[:3], 2),
        )
    ]
    governed(home, "set_peer", REMOTE_CHAIN, remote)
    governed(remote, "set_peer", chain.chain_id, home)
    governed(home, "list_token", token, wrapped, True)
    governed(remote, "list_token", wrapped, token, False)
    for bridge, local in ((home, token), (remote, wrapped)):
        for direction in (OUTBOUND, INBOUND):
            governed(bridge, "set_limit", local, direction, CAPACITY, ENT, CAPACITY)
    token.mint(holder, 10**6 * ENT, sender=deployer)
    token.approve(home, 2**256 - 1, sender=holder)

    def lock(amount=ENT):
        return home.lock(token, amount, REMOTE_CHAIN, holder, sender=holder)

    first = lock()
    rows.append(
        row(
            SECTION,
            "lock (home), the bridge's first ever",
            first,
            note="one-time: the bridge's token balance goes from zero to non-zero",
        )
    )
    locks = [_sent(first, chain.chain_id, home)]
    receipt = lock()
    locks.append(_sent(receipt, chain.chain_id, home))
    rows.append(row(SECTION, "lock (home)", receipt, 55_000))

    # Unlock (mint) with 1, 2, 3, 5 signatures; the first mint to the holder is separate.
    mints = []
    for count in (1, 1, 2, 3, 5):
        governed(remote, "set_relayers", relayers[:count], count)
        receipt = lock()
        transfer = _sent(receipt, chain.chain_id, home)
        mints.append(
            (
                count,
                remote.unlock(
                    transfer,
                    _sigs(remote, transfer, ACTION_UNLOCK, relayers[:count]),
                    sender=submitter,
                ),
            )
        )
        locks.append(transfer)
    count, first_mint = mints[0]
    rows.append(
        row(
            SECTION,
            "unlock on remote (mint), 1-of-1, first mint to the recipient",
            first_mint,
            note="one-time: the recipient's balance and the supply go from zero to non-zero",
        )
    )
    base = mints[1][1].gas_used
    for count, receipt in mints[1:]:
        rows.append(
            row(
                SECTION,
                f"unlock on remote (mint), {count}-of-{count}",
                receipt,
                60_000 if count == 1 else None,
            )
        )
    for count, receipt in mints[2:]:
        per = -(-(receipt.gas_used - base) // (count - 1))
        rows.append(
            GasRow(
                SECTION,
                f"each further signature ({count} signatures)",
                per,
                7_000,
                note=f"({receipt.gas_used:,} - {base:,}) / {count - 1}",
            )
        )

    governed(home, "set_relayers", relayers[:1], 1)
    for label, transfer in (("the first ever", locks[0]), ("", locks[1])):
        rows.append(
            row(
                SECTION,
                f"mark_transferred (home), 1-of-1{', ' + label if label else ''}",
                home.mark_transferred(
                    transfer,
                    _sigs(home, transfer, ACTION_DELIVERED, relayers[:1]),
                    sender=submitter,
                ),
                note="one-time: the first settled-bitmap word goes from zero to non-zero"
                if label
                else "",
            )
        )
    first_burn = remote.burn(wrapped, ENT, chain.chain_id, holder, sender=holder)
    rows.append(
        row(
            SECTION,
            "burn (remote), the first ever",
            first_burn,
            note="no one-time cost: the bucket word was non-zero (listed) and no bitmap is written",
        )
    )
    burn = remote.burn(wrapped, ENT, chain.chain_id, holder, sender=holder)
    rows.append(row(SECTION, "burn (remote)", burn, 50_000))
    for receipt, label in ((first_burn, "first release ever"), (burn, "1-of-1")):
        back = _sent(receipt, REMOTE_CHAIN, remote)
        rows.append(
            row(
                SECTION,
                f"unlock on home (release), {label}",
                home.unlock(back, _sigs(home, back, ACTION_UNLOCK, relayers[:1]), sender=submitter),
                60_000 if label == "1-of-1" else None,
                note="no one-time cost: the processed bit goes into the inbound bucket word"
                if label != "1-of-1"
                else "",
            )
        )
    # The processed cache moves on: the first unlock of nonce 64 flushes nonces 0..63 into
    # the bitmap (its first word: zero to non-zero) and caches 64..127; once per 64 nonces.
    governed(remote, "set_relayers", relayers[:1], 1)
    while home.next_nonce(token) < 64:
        lock()
    window = _sent(lock(), chain.chain_id, home)
    rows.append(
        row(
            SECTION,
            "unlock on remote (mint), 1-of-1, the first of a new window of 64 nonces",
            remote.unlock(
                window, _sigs(remote, window, ACTION_UNLOCK, relayers[:1]), sender=submitter
            ),
            note="once per 64 nonces in order: the cached window is flushed into the "
            "processed bitmap (here its first word, zero to non-zero)",
        )
    )
    return rows
