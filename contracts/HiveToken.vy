# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title HVT: the Hive Power token
@license GNU Affero General Public License v3.0 only
@notice ERC-20 with 18 decimals and EIP-2612 permit (snekmate `erc20`). The whole supply,
        100,000,000 HVT, is created once at deployment and sent to a treasury; nobody can
        mint afterwards. Holders may burn their own HVT (the Beekeeper burns half of every
        hive and meter fee).
@custom:security No privileged role survives deployment: the minter role and ownership are
        given up in the constructor.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc20


initializes: ownable
initializes: erc20[ownable := ownable]


# @dev Deliberately not exported: `erc20.mint`, `erc20.set_minter`, `erc20.is_minter`,
# `erc20.transfer_ownership`, `erc20.renounce_ownership` and `ownable.owner` (no minting
# after deployment, no owner).
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
    erc20.burn,
    erc20.burn_from,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
)


# @dev 100,000,000 HVT with 18 decimals.
INITIAL_SUPPLY: public(constant(uint256)) = 100_000_000 * 10**18


@deploy
def __init__(treasury: address):
    """
    @notice Creates the whole HVT supply for `treasury`.
    @param treasury The account receiving 100,000,000 HVT.
    """
    assert treasury != empty(address), "hvt: zero treasury"
    ownable.__init__()
    erc20.__init__("Hive Power Token", "HVT", 18, "Hive Power Token", "1")
    erc20._mint(treasury, INITIAL_SUPPLY)
    # Give up every privilege: no minting, no owner, ever again.
    erc20.is_minter[msg.sender] = False
    ownable._transfer_ownership(empty(address))
