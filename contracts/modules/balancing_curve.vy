# pragma version ~=0.4.3
"""
@title Price curve of the balancing market (SPEC section 9)
@license GNU Affero General Public License v3.0 only
@notice Stateless. A slot's imbalance `I = production - consumption` is in Wh. The price of
        the Wh between imbalance `k` and `k + 1` is a staircase on a grid of one quote base
        unit per Wh (0.001 eEuro per kWh for a 6-decimal coin):
            p(k) = clamp(base - tick * floor(k / step), min, max)
        so it is `base` when balanced, falls by `tick` every `step` Wh of surplus and rises by
        `tick` every `step` Wh of deficit. A commitment is charged (consumer) or paid
        (producer) the exact integral of this price over the imbalance it moves: a producer's
        `w` Wh at imbalance `I` are paid `sum(p(k) for k in [I, I + w))`, a consumer's cost
        `sum(p(k) for k in [I - w, I))`. Every term is an integer in quote base units, so the
        integral has no rounding at all: it is additive over any split of an interval, and one
        commitment of 10 kWh costs exactly what ten of 1 kWh cost, to the base unit.
@dev Closed form. With `q(k) = floor(k / step)`, `T(n) = sum(q(k) for k in [0, n))` extended
     to negative `n` (T(0) = 0, T(n + 1) - T(n) = q(n)) is, for `n = m * step + r` with
     `0 <= r < step`: `T(n) = step * m * (m - 1) / 2 + r * m` (m * (m - 1) is even: exact).
     The clamp splits `[lo, hi)` at `K1`, the first `k` priced below `max`, and `K2`, the
     first `k` priced at `min`: `K1 = (floor((base - max) / tick) + 1) * step`,
     `K2 = ceil((base - min) / tick) * step`; `min < max` gives `K1 <= K2`, and inside
     `[K1, K2)` the unclamped price lies strictly between `min` and `max`.
     Bounds (checked by the market): |k| <= 2**49, prices <= 2**40, step <= 2**40, so every
     product below stays under 2**200.
"""


struct Curve:
    # Quote base units per Wh.
    base: int256
    low: int256
    high: int256
    tick: int256
    # Wh of imbalance per tick of price.
    step: int256


# Every product below is bounded by the market's checks (|k| <= 2**50, prices, tick and
# step < 2**40: the largest, tick * T, stays under 2**142), so the arithmetic is unchecked.


@pure
@internal
def _floor_div(a: int256, b: int256) -> int256:
    # b > 0. SDIV truncates toward zero; the staircase needs floor.
    q: int256 = unsafe_div(a, b)
    if a < 0 and unsafe_mul(q, b) != a:
        q = unsafe_sub(q, 1)
    return q


@pure
@internal
def _tri(n: int256, step: int256) -> int256:
    # T(n) = sum(floor(k / step) for k in [0, n)), any sign of n; m * (m - 1) is even.
    m: int256 = self._floor_div(n, step)
    r: int256 = unsafe_sub(n, unsafe_mul(m, step))
    return unsafe_add(
        unsafe_div(unsafe_mul(unsafe_mul(step, m), unsafe_sub(m, 1)), 2), unsafe_mul(r, m)
    )


@pure
@internal
def price_at(c: Curve, k: int256) -> int256:
    """
    @notice The price of the Wh between imbalance `k` and `k + 1`, quote base units per Wh.
    """
    u: int256 = unsafe_sub(c.base, unsafe_mul(c.tick, self._floor_div(k, c.step)))
    return min(max(u, c.low), c.high)


@pure
@internal
def integral(c: Curve, lo: int256, hi: int256) -> uint256:
    """
    @notice `sum(price_at(k) for k in [lo, hi))`, exact, in quote base units; `lo <= hi`.
    """
    # K1 = (floor((base - max) / tick) + 1) * step = (1 - ceil((max - base) / tick)) * step,
    # K2 = ceil((base - min) / tick) * step; both dividends are >= 0 (min <= base <= max).
    tick_less: int256 = unsafe_sub(c.tick, 1)
    k1: int256 = unsafe_mul(
        unsafe_sub(1, unsafe_div(unsafe_add(unsafe_sub(c.high, c.base), tick_less), c.tick)),
        c.step,
    )
    k2: int256 = unsafe_mul(
        unsafe_div(unsafe_add(unsafe_sub(c.base, c.low), tick_less), c.tick), c.step
    )
    total: int256 = 0
    a: int256 = lo
    e: int256 = min(hi, k1)
    if e > a:
        total = unsafe_mul(unsafe_sub(e, a), c.high)
        a = e
    e = min(hi, k2)
    if e > a:
        t: int256 = unsafe_sub(self._tri(e, c.step), self._tri(a, c.step))
        total = unsafe_add(
            total, unsafe_sub(unsafe_mul(unsafe_sub(e, a), c.base), unsafe_mul(c.tick, t))
        )
        a = e
    if hi > a:
        total = unsafe_add(total, unsafe_mul(unsafe_sub(hi, a), c.low))
    return convert(total, uint256)
