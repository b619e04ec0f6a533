# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title eEuro: the community's euro stablecoin
@license GNU Affero General Public License v3.0 only
@notice ERC-20 with 6 decimals and EIP-2612 permit (snekmate `erc20`). A banker, set by
        governance, is the only account that mints. A holder `lock`s eEuro to ask for
        redemption; the banker then `burn`s the locked eEuro (after paying out real euros)
        or `release`s it back to the holder. Locked eEuro is held by this contract, so
        `balanceOf(self) == total_locked` and the supply is always the sum of balances.
@custom:security The banker is a trusted authority: it can mint without limit and decides
        the fate of locked funds. It starts unset; only governance (`owner`, the Council
        once ownership is transferred to it) can set or revoke it.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc20


initializes: ownable
initializes: erc20[ownable := ownable]


# @dev Deliberately not exported: `erc20.mint`, `erc20.set_minter` and `erc20.is_minter`
# (the banker replaces the minter role), `erc20.burn` and `erc20.burn_from` (eEuro is only
# destroyed by the banker, out of locked funds), `erc20.transfer_ownership` and
# `erc20.renounce_ownership` (they move the unused minter role; `ownable`'s own
# `transfer_ownership` is exported instead, and renouncing governance is not allowed).
# `transfer` and `transferFrom` are this contract's own: they refuse the token's own address,
# where eEuro would be stranded and break `balanceOf(self) == total_locked`.
exports: (
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
    ownable.owner,
    ownable.transfer_ownership,
)


# @dev The account allowed to mint and to burn or release locked funds; empty when unset.
banker: public(address)

# @dev eEuro each holder has locked for redemption (held by this contract).
locked: public(HashMap[address, uint256])

# @dev Sum of `locked`, equal to `balanceOf(self)`.
total_locked: public(uint256)


event BankerSet:
    previous_banker: indexed(address)
    new_banker: indexed(address)


event FundsLocked:
    account: indexed(address)
    amount: uint256
    total_locked: uint256


event LockedReleased:
    account: indexed(address)
    banker: indexed(address)
    amount: uint256


event LockedBurned:
    account: indexed(address)
    banker: indexed(address)
    amount: uint256


@deploy
def __init__(governance: address):
    """
    @notice Deploys eEuro with no banker and `governance` as the only account that may set one.
    @param governance The governance address (the Council, or the deployer until it exists).
    """
    assert governance != empty(address), "eeuro: zero governance"
    ownable.__init__()
    erc20.__init__("PowerHive eEuro", "EEUR", 6, "PowerHive eEuro", "1")
    # The snekmate minter role is not used: only the banker mints.
    erc20.is_minter[msg.sender] = False
    if governance != msg.sender:
        ownable._transfer_ownership(governance)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` eEuro from the caller to `to` (never to this contract: use `lock`).
    @param to The receiver.
    @param amount Amount in base units.
    @return True.
    """
    assert to != self, "eeuro: transfer to this contract"
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` eEuro from `owner` to `to` within the caller's allowance (never to
            this contract).
    @param owner The holder.
    @param to The receiver.
    @param amount Amount in base units.
    @return True.
    """
    assert to != self, "eeuro: transfer to this contract"
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True


@external
def set_banker(new_banker: address):
    """
    @notice Sets (or, with the zero address, revokes) the banker.
    @dev Governance only.
    @param new_banker The new banker account.
    """
    ownable._check_owner()
    assert new_banker != self, "eeuro: banker is this contract"
    log BankerSet(previous_banker=self.banker, new_banker=new_banker)
    self.banker = new_banker


@external
def mint(to: address, amount: uint256):
    """
    @notice Mints `amount` eEuro to `to` against euros the banker received.
    @param to The receiver.
    @param amount Amount in base units (6 decimals).
    """
    self._check_banker()
    assert amount != 0, "eeuro: zero amount"
    assert to != self, "eeuro: mint to this contract"
    erc20._mint(to, amount)


@external
def lock(amount: uint256):
    """
    @notice Locks `amount` of the caller's eEuro to ask the banker for redemption.
    @param amount Amount in base units.
    """
    assert amount != 0, "eeuro: zero amount"
    assert erc20.balanceOf[msg.sender] >= amount, "eeuro: lock exceeds balance"
    erc20._transfer(msg.sender, self, amount)
    new_locked: uint256 = self.locked[msg.sender] + amount
    self.locked[msg.sender] = new_locked
    self.total_locked += amount
    log FundsLocked(account=msg.sender, amount=amount, total_locked=new_locked)


@external
def burn(account: address, amount: uint256):
    """
    @notice Burns `amount` of the eEuro `account` locked, once the banker paid it out.
    @param account The holder whose locked funds are burned.
    @param amount Amount in base units.
    """
    self._check_banker()
    self._take_locked(account, amount, "eeuro: burn exceeds locked")
    erc20._burn(self, amount)
    log LockedBurned(account=account, banker=msg.sender, amount=amount)


@external
def release(account: address, amount: uint256):
    """
    @notice Returns `amount` of the eEuro `account` locked back to it.
    @param account The holder whose locked funds are released.
    @param amount Amount in base units.
    """
    self._check_banker()
    self._take_locked(account, amount, "eeuro: release exceeds locked")
    erc20._transfer(self, account, amount)
    log LockedReleased(account=account, banker=msg.sender, amount=amount)


@internal
def _check_banker():
    # The banker's own account only: `msg.sender`, never `tx.origin` or a delegate.
    banker: address = self.banker
    assert banker != empty(address), "eeuro: banker not set"
    assert msg.sender == banker, "eeuro: caller is not the banker"


@internal
def _take_locked(account: address, amount: uint256, reason: String[32]):
    assert amount != 0, "eeuro: zero amount"
    held: uint256 = self.locked[account]
    assert held >= amount, reason
    self.locked[account] = unsafe_sub(held, amount)
    self.total_locked = unsafe_sub(self.total_locked, amount)
