# pragma version ~=0.4.3
"""
@title BrokenCoin: a TEST-ONLY token that fails one ERC-20 call on purpose
@license GNU Affero General Public License v3.0 only
@notice For the Beekeeper's eligibility check: `mode` 1 makes `decimals` revert, 2 makes
        `transfer` return false, 3 makes `balanceOf` revert, 4 makes a zero `transfer`
        change the balance. Never deploy it outside tests.
"""


mode: public(uint8)
balances: HashMap[address, uint256]


@deploy
def __init__(mode: uint8):
    self.mode = mode


@view
@external
def decimals() -> uint8:
    assert self.mode != 1, "broken: decimals"
    return 6


@view
@external
def balanceOf(owner: address) -> uint256:
    assert self.mode != 3, "broken: balanceOf"
    return self.balances[owner]


@external
def transfer(to: address, amount: uint256) -> bool:
    if self.mode == 2:
        return False
    if self.mode == 4:
        self.balances[to] += 1
    return True
