# pragma version ~=0.4.3
"""
@title Imbalance cost math of the energy ledger (SPEC §3)
@license GNU Affero General Public License v3.0 only
@notice Stateless. `D = ENT - KWH` in ENT base units (1 Wh = 10**15), `R` a wad fraction per
        kWh. When `D > 0` (energy was lost) minting gives `1 - r` ENT per kWh and burning
        takes `1 + r`; when `D < 0` (surplus found) the mirror image. Either way `D` shrinks
        by `r` per kWh, and an operation that would overshoot pays the cost only up to
        `D = 0`: the adjustment is capped at `|D|`, so the rest goes at 1:1.
        Rounding favours conservation: mint rounds down, burn rounds up.
"""


WH: constant(uint256) = 10**15
WAD: constant(uint256) = 10**18


@pure
@internal
def _adjustment(amount: uint256, rate: uint256, gap: uint256, round_up: bool) -> uint256:
    # The cost `amount * rate`, capped at the gap left to equilibrium.
    cost: uint256 = amount * rate // WAD
    if round_up and cost * WAD != amount * rate:
        cost += 1
    return min(cost, gap)


@pure
@internal
def mint_amount(wh: uint256, d: int256, r: uint256) -> (uint256, int256):
    """
    @notice ENT minted for `wh` Wh of new stored energy, and the new imbalance.
    @param wh Energy in Wh.
    @param d Imbalance before, in ENT base units.
    @param r Applied cost (already capped by M), wad.
    @return minted, d after.
    """
    amount: uint256 = wh * WH
    if r == 0 or d == 0:
        return amount, d
    if d > 0:
        adj: uint256 = self._adjustment(amount, r, convert(d, uint256), True)
        return amount - adj, d - convert(adj, int256)
    adj: uint256 = self._adjustment(amount, r, convert(-d, uint256), False)
    return amount + adj, d + convert(adj, int256)


@pure
@internal
def burn_amount(wh: uint256, d: int256, r: uint256) -> (uint256, int256):
    """
    @notice ENT burned for `wh` Wh of consumed energy, and the new imbalance.
    @param wh Energy in Wh.
    @param d Imbalance before, in ENT base units.
    @param r Applied cost (already capped by B), wad.
    @return burned, d after.
    """
    amount: uint256 = wh * WH
    if r == 0 or d == 0:
        return amount, d
    if d > 0:
        adj: uint256 = self._adjustment(amount, r, convert(d, uint256), True)
        return amount + adj, d - convert(adj, int256)
    adj: uint256 = self._adjustment(amount, r, convert(-d, uint256), False)
    return amount - adj, d + convert(adj, int256)


@pure
@internal
def reserve_for(ent: uint256, r: uint256) -> uint256:
    """
    @notice Whole Wh that `ent` ENT reserves: `ent / (1 + r_burn)` (SPEC section 3), whatever
            the sign of `D`. The dearer side is the one an escrow must be able to pay: with
            `D < 0` the burn is cheaper only until `D` reaches 0, then it is 1:1 or dearer.
    @param ent ENT base units.
    @param r Applied burn cost, wad.
    @return Wh.
    """
    return ent * WAD // (WH * (WAD + r))


@pure
@internal
def payable_wh(escrow: uint256, max_wh: uint256, d: int256, r: uint256) -> uint256:
    """
    @notice The most Wh, at most `max_wh`, whose burn at the rate in force `escrow` pays.
    @dev `burn_amount` is non-decreasing in `wh`: a bisection, at most 64 rounds because
         `max_wh < 2**64`. Only called when the whole of `max_wh` costs more than `escrow`.
    @param escrow ENT base units available.
    @param max_wh Upper bound in Wh.
    @param d Imbalance, ENT base units.
    @param r Applied burn cost, wad.
    @return Wh.
    """
    lo: uint256 = 0
    hi: uint256 = max_wh
    for i: uint256 in range(64):
        if lo >= hi:
            break
        mid: uint256 = (lo + hi + 1) // 2
        burned: uint256 = 0
        d_unused: int256 = 0
        burned, d_unused = self.burn_amount(mid, d, r)
        if burned <= escrow:
            lo = mid
        else:
            hi = mid - 1
    return lo


@pure
@internal
def next_cost(d_before: int256, d_after: int256, r: uint256, c: uint256) -> uint256:
    """
    @notice The cost rule: recomputed as `|D| * C` when `|D|` grew (so after shrinking, a
            new growth may give a lower R than before), fixed while it shrinks, reset to 0
            at equilibrium. A jump across zero passes equilibrium: R resets and is
            recomputed from the new `|D|`, as if `D` had touched 0 and grown again.
    @param d_before Imbalance before the operation.
    @param d_after Imbalance after it.
    @param r Cost before (wad).
    @param c Share of the gap recovered per kWh (wad).
    @return The cost after (wad).
    """
    if d_after == 0:
        return 0
    before: uint256 = convert(abs(d_before), uint256)
    after: uint256 = convert(abs(d_after), uint256)
    if after > before or (d_before < 0) != (d_after < 0):
        return after * c // WAD
    return r
