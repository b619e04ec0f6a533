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
def reserve_for(ent: uint256, d: int256, r: uint256) -> uint256:
    """
    @notice Whole Wh that `ent` ENT pays for at the burn rate in force (no overshoot credit).
    @param ent ENT base units.
    @param d Imbalance, ENT base units.
    @param r Applied burn cost, wad.
    @return Wh.
    """
    if r == 0 or d == 0:
        return ent // WH
    if d > 0:
        return ent * WAD // (WH * (WAD + r))
    return ent * WAD // (WH * (WAD - r))


@pure
@internal
def next_cost(d_before: int256, d_after: int256, r: uint256, c: uint256) -> uint256:
    """
    @notice The cost rule: recomputed as `|D| * C` only when `|D|` grew, fixed while it
            shrinks, reset to 0 at equilibrium.
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
    if after > before:
        return after * c // WAD
    return r
