"""A plain-Python model of the balancing market's price curve (SPEC §9,
`contracts/modules/balancing_curve.vy`), shared by the unit and stateful tests: the price of
the Wh between imbalance `k` and `k + 1` and the integral over an imbalance range, computed
block by block (no closed form), so the contract's closed form is checked against a different
computation."""

from __future__ import annotations

from dataclasses import dataclass

GRID = 1000  # quote base units per kWh of one quote base unit per Wh


@dataclass(frozen=True)
class Params:
    """Prices per kWh (multiples of GRID), as `set_parameters` takes them."""

    base: int = 250_000
    low: int = 50_000
    high: int = 600_000
    tick: int = 1_000
    step: int = 100
    horizon: int = 672
    window: int = 86_400

    def args(self) -> tuple[int, ...]:
        return (self.base, self.low, self.high, self.tick, self.step, self.horizon, self.window)


def price_wh(p: Params, k: int) -> int:
    """Quote base units for the Wh between imbalance k and k + 1."""
    unclamped = p.base // GRID - (p.tick // GRID) * (k // p.step)
    return min(max(unclamped, p.low // GRID), p.high // GRID)


def integral(p: Params, lo: int, hi: int) -> int:
    """sum(price_wh(k) for k in [lo, hi)), one term per block of `step` Wh; a run of blocks
    at the maximum is found by a search on the (monotone) price, and everything from the first
    block at the minimum on is at the minimum, so huge ranges stay cheap."""
    assert lo <= hi
    low, high = p.low // GRID, p.high // GRID
    total, k = 0, lo
    while k < hi:
        m = k // p.step
        price = price_wh(p, k)
        if price == low:
            return total + (hi - k) * low
        last = m
        if price == high:
            # The last block still at the maximum: exponential, then binary search.
            span = 1
            while price_wh(p, (m + span) * p.step) == high and (m + span) * p.step < hi:
                span *= 2
            a, b = m + span // 2, m + span  # price(a) == high; b is past the run or past hi
            while b - a > 1:
                mid = (a + b) // 2
                if price_wh(p, mid * p.step) == high:
                    a = mid
                else:
                    b = mid
            last = a
        e = min(hi, (last + 1) * p.step)
        total += (e - k) * price
        k = e
    return total


def produce_pay(p: Params, imbalance: int, wh: int) -> int:
    """What a producer's `wh` Wh at `imbalance` is paid (reserved from the seed)."""
    return integral(p, imbalance, imbalance + wh)


def consume_cost(p: Params, imbalance: int, wh: int) -> int:
    """What a consumer's `wh` Wh at `imbalance` costs (escrowed)."""
    return integral(p, imbalance - wh, imbalance)
