# pragma version ~=0.4.3
"""
@title Beekeeper proxy (ERC-1967 pass-through)
@license GNU Affero General Public License v3.0 only
@notice Delegates every call to the implementation stored at the ERC-1967 slot and returns
        or reverts with exactly what the implementation returned. It has no function of its
        own: only the implementation can change the slot (the Beekeeper does so when a
        hive-owner upgrade ballot passes).
@custom:security Whoever controls the implementation controls the proxy's storage; the
        Beekeeper lets only a passed hive-owner vote replace it.
"""


from .modules import erc1967


initializes: erc1967


# @dev Largest return data passed through: `hive_meters` of a full hive (128 addresses)
# is 4,160 bytes; views of the Beekeeper return less than 8 KiB.
MAX_RETURN: constant(uint256) = 8192


@deploy
@payable
def __init__(implementation: address, data: Bytes[1024]):
    """
    @notice Points the proxy at `implementation` and runs `data` (its initializer) in the
            proxy's storage, in the same transaction, so nobody can initialize it first.
    @param implementation The first implementation.
    @param data Calldata delegated once to `implementation` (empty: none).
    """
    erc1967._upgrade_to(implementation)
    if len(data) != 0:
        raw_call(implementation, data, is_delegate_call=True)


@external
@payable
@raw_return
def __default__() -> Bytes[MAX_RETURN]:
    """
    @notice Every call: delegated to the implementation; its revert data is re-raised.
    """
    return raw_call(
        erc1967.implementation, msg.data, max_outsize=MAX_RETURN, is_delegate_call=True
    )
