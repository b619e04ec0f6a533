"""Helpers shared by the bridge's unit tests (SPEC section 6, issue 12).

Two chains on one Anvil: `home` is the Bridge of the token's home chain (it takes the real
`chain.id` as its identity), `remote` the other community's Bridge, deployed with chain id
`REMOTE_CHAIN`. Both use the real chain id in their EIP-712 domains, so their attestations
differ by verifying contract, as they would by chain id on two real chains. One Council with
three voters governs both (two YES pass a vote).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ape import chain

from scripts._bridge import (
    ACTION_DELIVERED,
    ACTION_UNLOCK,
    INBOUND,
    OUTBOUND,
    Transfer,
    sign,
    transfer_from_event,
)
from scripts._protocol import pass_vote
from tests.conftest import assert_supply_conserved

ENT = 10**18
REMOTE_CHAIN = 4242
CAPACITY = 1_000 * ENT
RATE = ENT  # one token per second back into the bucket
MAX_TRANSFER = 500 * ENT


@dataclass
class Bridges:
    council: object
    voters: list
    home: object
    remote: object
    token: object  # the home token (lock/release on `home`)
    wrapped: object  # its wrapped form on `remote` (mint/burn)
    relayers: list  # Ape test accounts, sorted by address
    threshold: int
    in_flight: dict = field(default_factory=dict)  # transfer id -> amount, both directions

    @property
    def home_chain(self) -> int:
        return chain.chain_id

    def governed(self, target, method: str, *args):
        data = getattr(target, method).encode_input(*args)
        return pass_vote(self.council, target, data, self.voters[:2])

    def keys(self, signers=None) -> list:
        return [
            a.private_key for a in (self.relayers[: self.threshold] if signers is None else signers)
        ]

    def sigs(self, bridge, transfer: Transfer, action: int, signers=None) -> list:
        return sign(chain.chain_id, bridge.address, transfer.id(), action, self.keys(signers))

    def sent(self, bridge, receipt) -> Transfer:
        """The transfer a lock or burn receipt recorded."""
        (log,) = [e for e in receipt.events if e.event_name == "TransferSent"]
        source_chain = self.home_chain if bridge == self.home else REMOTE_CHAIN
        return transfer_from_event(log, source_chain, bridge.address)

    def lock(self, holder, amount, recipient=None) -> Transfer:
        self.token.approve(self.home, amount, sender=holder)
        receipt = self.home.lock(
            self.token, amount, REMOTE_CHAIN, recipient or holder, sender=holder
        )
        transfer = self.sent(self.home, receipt)
        self.in_flight[transfer.id()] = amount
        return transfer

    def burn(self, holder, amount, recipient=None) -> Transfer:
        receipt = self.remote.burn(
            self.wrapped, amount, self.home_chain, recipient or holder, sender=holder
        )
        transfer = self.sent(self.remote, receipt)
        self.in_flight[transfer.id()] = amount
        return transfer

    def deliver(self, transfer: Transfer, sender):
        """Unlocks `transfer` on its destination and marks it on its source."""
        dest, source = (
            (self.remote, self.home)
            if transfer.source_bridge == self.home.address
            else (self.home, self.remote)
        )
        receipt = dest.unlock(transfer, self.sigs(dest, transfer, ACTION_UNLOCK), sender=sender)
        self.in_flight.pop(transfer.id())
        source.mark_transferred(
            transfer, self.sigs(source, transfer, ACTION_DELIVERED), sender=sender
        )
        return receipt

    def assert_conserved(self):
        """Home locked balance = remote wrapped supply + transfers in flight either way, and
        each token's supply is the sum of its balances."""
        locked = self.token.balanceOf(self.home)
        assert locked == self.wrapped.totalSupply() + sum(self.in_flight.values())
        assert_supply_conserved(self.token)
        assert_supply_conserved(self.wrapped)


def make_bridges(project, deployer, voters, relayers, threshold, holders) -> Bridges:
    """A configured pair: peers set, the token listed both sides with limits, relayers set."""
    council = deployer.deploy(project.Council)
    for i, voter in enumerate(voters[1:], start=1):
        pass_vote(council, council, council.add_voter.encode_input(voter), voters[:i])
    home = deployer.deploy(project.Bridge, council, chain.chain_id)
    remote = deployer.deploy(project.Bridge, council, REMOTE_CHAIN)
    token = deployer.deploy(project.MockToken, "ENT", 18)
    wrapped = deployer.deploy(
        project.WrappedToken, "Wrapped ENT", "wENT", 18, "Wrapped ENT", remote
    )
    relayers = sorted(relayers, key=lambda a: int(a.address, 16))
    b = Bridges(council, voters, home, remote, token, wrapped, relayers, threshold)
    b.governed(home, "set_peer", REMOTE_CHAIN, remote)
    b.governed(remote, "set_peer", chain.chain_id, home)
    b.governed(home, "list_token", token, wrapped, True)
    b.governed(remote, "list_token", wrapped, token, False)
    for bridge, local in ((home, token), (remote, wrapped)):
        for direction in (OUTBOUND, INBOUND):
            b.governed(bridge, "set_limit", local, direction, CAPACITY, RATE, MAX_TRANSFER)
        b.governed(bridge, "set_relayers", relayers, threshold)
    for holder in holders:
        token.mint(holder, 10_000 * ENT, sender=deployer)
    return b
