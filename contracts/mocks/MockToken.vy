# pragma version ~=0.4.3
"""
@title MockToken: a TEST-ONLY ERC-20 with any number of decimals and open minting
@license GNU Affero General Public License v3.0 only
@notice snekmate `erc20` with the decimals chosen at deployment, so the order book's tests
        can trade pairs other than ENT / eEuro (for instance a 6-decimals base). Never
        deploy it outside tests.
@custom:security Anyone may mint: this is a test fixture.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc20


initializes: ownable
initializes: erc20[ownable := ownable]


# @dev Only the plain ERC-20 surface; minting is the open `mint` below.
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
)


@deploy
def __init__(symbol: String[5], decimals: uint8):
    """
    @notice Deploys an empty token.
    @param symbol Its symbol (also its name).
    @param decimals Its decimals.
    """
    ownable.__init__()
    erc20.__init__(symbol, symbol, decimals, symbol, "1")


@external
def mint(to: address, amount: uint256):
    """
    @notice Mints `amount` to `to`; open to anyone (test token).
    @param to The receiver.
    @param amount Amount in base units.
    """
    erc20._mint(to, amount)
