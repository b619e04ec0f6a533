# pragma version ~=0.4.3
"""
@title ERC-1967 implementation slot
@license GNU Affero General Public License v3.0 only
@notice The storage shared by `BeekeeperProxy` and every Beekeeper implementation: the
        implementation address at the ERC-1967 slot
        `bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)`.
@dev Vyper 0.4.3 cannot pin a variable to a slot, so a gap puts it there: `_gap` fills slots
     0 .. SLOT-1 (never read or written; the implementation's own variables follow the slot,
     at SLOT+1 and on, and hash maps live at hashed slots). A module initialized first in the
     proxy and in every implementation gives both the same prefix, which a test checks with
     `vyper -f layout`.
"""


# @dev 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc, the ERC-1967
# implementation slot, written in decimal (array bounds must be decimal literals).
_gap: uint256[24440054405305269366569402256811496959409073762505157381672968839269610695612]

# @dev The contract every call is delegated to.
implementation: address


event Upgraded:
    implementation: indexed(address)


@internal
def _upgrade_to(new_implementation: address):
    assert new_implementation.is_contract, "proxy: implementation not a contract"
    self.implementation = new_implementation
    log Upgraded(implementation=new_implementation)
