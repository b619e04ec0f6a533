# pragma version ~=0.4.3
"""
@title A hive owner whose upgrade proposal vanishes (test contract)
@license GNU Affero General Public License v3.0 only
@notice Owns a hive like any owner; `propose_vanishing` creates a contract, proposes it as the
        Beekeeper's implementation and destroys it in the same transaction (EIP-6780: code
        created and self-destructed in one transaction is removed). The ballot's action then
        fails when it passes, which must close the ballot failed instead of reverting votes.
"""


interface IBeekeeper:
    def create_hive(stablecoin: address, meters: DynArray[address, 128]) -> uint256: nonpayable
    def propose_upgrade(implementation: address) -> uint256: nonpayable


interface IToken:
    def approve(spender: address, amount: uint256) -> bool: nonpayable


# @dev Init code returning the runtime 0x33ff (CALLER SELFDESTRUCT): any call destroys it.
SELF_DESTRUCTOR: constant(Bytes[11]) = x"6133ff6000526002601ef3"


@external
def create_hive(beekeeper: address, hvt: address, coin: address, meter: address) -> uint256:
    """
    @notice Approves the Beekeeper and creates a hive of one meter certified for this contract.
    @return The hive id.
    """
    extcall IToken(hvt).approve(beekeeper, max_value(uint256))
    return extcall IBeekeeper(beekeeper).create_hive(coin, [meter])


@external
def propose_vanishing(beekeeper: address) -> (uint256, address):
    """
    @notice Proposes a contract that is gone once this transaction ends.
    @return The ballot id and the vanished implementation.
    """
    child: address = raw_create(SELF_DESTRUCTOR)
    ballot: uint256 = extcall IBeekeeper(beekeeper).propose_upgrade(child)
    raw_call(child, b"")
    return ballot, child
