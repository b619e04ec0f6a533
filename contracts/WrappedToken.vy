# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title WrappedToken: the remote-chain form of a token whose home is the other chain
@license GNU Affero General Public License v3.0 only
@notice ERC-20 (snekmate `erc20`, with EIP-2612 permit) whose supply exists only because the
        bridge minted it against tokens locked on the home chain. The bridge is the only
        minter and the only account that burns, and it burns only the tokens of the holder
        who calls `Bridge.burn` (the way back home).
@custom:security The bridge, fixed at deployment, is trusted with the whole supply: it mints
        on M-of-N relayer attestations. Nothing else can mint, and nobody can change the
        bridge.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc20


initializes: ownable
initializes: erc20[ownable := ownable]


# @dev Deliberately not exported: `erc20.mint`, `erc20.set_minter`, `erc20.is_minter`,
# `erc20.transfer_ownership`, `erc20.renounce_ownership` (the bridge replaces the minter role
# and no owner exists to move it), `ownable`'s functions (nothing here is owned), and
# `erc20.burn` / `erc20.burn_from`: a wrapped token leaves circulation only through
# `Bridge.burn`, so the home chain's locked balance is always the wrapped supply plus the
# transfers in flight (a plain burn would strand home tokens in the bridge for ever).
exports: (
    erc20.transfer,
    erc20.transferFrom,
    erc20.approve,
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
)


# @dev The bridge contract, the only minter.
bridge: public(immutable(address))


@deploy
def __init__(
    name: String[25], symbol: String[5], decimals: uint8, name_eip712: String[50], bridge_: address
):
    """
    @notice Deploys an empty wrapped token minted only by `bridge_`.
    @param name The token name ("Wrapped ENT").
    @param symbol The symbol.
    @param decimals The home token's decimals.
    @param name_eip712 The EIP-712 domain name (for permit).
    @param bridge_ The bridge on this chain.
    """
    assert bridge_.is_contract, "wrapped: bridge has no code"
    ownable.__init__()
    erc20.__init__(name, symbol, decimals, name_eip712, "1")
    erc20.is_minter[msg.sender] = False
    # No owner: nobody can ever add a minter.
    ownable._transfer_ownership(empty(address))
    bridge = bridge_


# `@reentrant` (no lock) on `mint` and `bridge_burn`: they make no external call, so nothing
# can re-enter them, and only the bridge, which holds its own lock, calls them (the lock would
# cost ~300 gas on every unlock and burn; docs/gas.md).
@external
@reentrant
def mint(to: address, amount: uint256):
    """
    @notice Mints `amount` to `to`. Bridge only.
    @param to The receiver.
    @param amount Amount in base units.
    """
    assert msg.sender == bridge, "wrapped: caller is not the bridge"
    erc20._mint(to, amount)


@external
@reentrant
def bridge_burn(owner: address, amount: uint256):
    """
    @notice Burns `amount` of `owner`'s tokens. Bridge only.
    @dev The bridge calls it with `owner == msg.sender` of `Bridge.burn`, so no allowance is
         needed (and none is spent).
    @param owner The holder going home.
    @param amount Amount in base units.
    """
    assert msg.sender == bridge, "wrapped: caller is not the bridge"
    erc20._burn(owner, amount)
