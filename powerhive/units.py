"""Human units <-> base units, exactly: `Decimal` and integers only, never floats.

| what | human | base unit | decimals |
|---|---|---|---|
| ENT amount | kWh (1 ENT = 1 kWh) | ENT base unit (10**-18 kWh) | 18 |
| energy on the ledger | kWh | Wh | 3 |
| eEuro amount | EUR | eEuro base unit (10**-6 EUR) | 6 |
| book price (ENT / eEuro) | EUR/kWh | eEuro base units per whole ENT | 6 |
| governed fraction (M, B, C, F) | 0.2 or 20% | wad (10**-18) | 18 |
| HVT amount | HVT | HVT base unit | 18 |
| hive tariff | coin per kWh (0.20) | 1e-4 coin per kWh | 4 |
| hive market fee | 0.5% | basis point | 2 (of a percent) |
| duration | 900, 900s, 15m, 2h, 7d | seconds | 0 |

The order book prices in quote base units per one whole base token (`contracts/OrderBook.vy`),
so for ENT / eEuro a price of 0.210 EUR/kWh is 210,000. Parsing rejects signs, exponents,
thousands separators and more decimals than the unit holds ("too many decimals" is an error,
never a silent rounding); formatting is exact (trailing zeros trimmed down to a minimum).
"""

from __future__ import annotations

import re
from decimal import Decimal

from powerhive.errors import AmountError

ENT_DECIMALS = 18
EEURO_DECIMALS = 6
HVT_DECIMALS = 18
PRICE_DECIMALS = EEURO_DECIMALS  # EUR/kWh: eEuro base units per whole ENT
WAD_DECIMALS = 18
WH_DECIMALS = 3  # kWh with 3 decimals is a whole number of Wh

ONE_ENT = 10**ENT_DECIMALS
ONE_EEURO = 10**EEURO_DECIMALS
WAD = 10**WAD_DECIMALS
ENT_PER_WH = 10**15  # 1 Wh of ENT in base units (SPEC §0)

_NUMBER = re.compile(r"^(\d+)(?:\.(\d*))?$|^\.(\d+)$")
_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_units(text: str, decimals: int, *, what: str = "amount", unit: str = "") -> int:
    """`text` (a non-negative decimal number) times 10**decimals, exactly."""
    raw = str(text).strip()
    shown = f"{what} {raw!r}" + (f" ({unit})" if unit else "")
    match = _NUMBER.match(raw)
    if not match:
        raise AmountError(f"{shown}: not a non-negative decimal number")
    whole, frac = (match.group(1), match.group(2) or "") if match.group(1) else ("0", match[3])
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        raise AmountError(
            f"{shown}: too many decimals (at most {decimals}"
            + (f" for {unit}" if unit else "")
            + ")"
        )
    return int(whole) * 10**decimals + (int(frac.ljust(decimals, "0")) if frac else 0)


def format_units(value: int, decimals: int, *, min_places: int = 0, group: bool = True) -> str:
    """`value / 10**decimals` exactly, trailing zeros trimmed down to `min_places`."""
    value = int(value)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    digits = digits.ljust(min(min_places, decimals), "0")
    head = f"{whole:,}" if group else str(whole)
    return f"{sign}{head}.{digits}" if digits else f"{sign}{head}"


def to_decimal(value: int, decimals: int) -> Decimal:
    """The exact `Decimal` of a base amount (for tables and CSV files)."""
    return Decimal(int(value)).scaleb(-decimals)


# ENT and energy -------------------------------------------------------------------------


def parse_kwh(text: str, *, what: str = "amount") -> int:
    """kWh -> ENT base units (18 decimals)."""
    return parse_units(text, ENT_DECIMALS, what=what, unit="kWh")


def format_kwh(base: int, *, min_places: int = 3) -> str:
    """ENT base units -> kWh."""
    return format_units(base, ENT_DECIMALS, min_places=min_places)


def parse_energy_wh(text: str, *, what: str = "energy") -> int:
    """kWh -> Wh, the ledger's energy unit (at most 3 decimals)."""
    return parse_units(text, WH_DECIMALS, what=what, unit="kWh")


def format_wh(wh: int, *, min_places: int = 3) -> str:
    """Wh -> kWh."""
    return format_units(wh, WH_DECIMALS, min_places=min_places)


# eEuro and prices -----------------------------------------------------------------------


def parse_eur(text: str, *, what: str = "amount") -> int:
    """EUR -> eEuro base units (6 decimals)."""
    return parse_units(text, EEURO_DECIMALS, what=what, unit="EUR")


def format_eur(base: int, *, min_places: int = 2) -> str:
    """eEuro base units -> EUR."""
    return format_units(base, EEURO_DECIMALS, min_places=min_places)


def parse_price(text: str, *, quote_decimals: int = PRICE_DECIMALS, what: str = "price") -> int:
    """EUR/kWh -> the book's price: quote base units per whole ENT."""
    return parse_units(text, quote_decimals, what=what, unit="EUR/kWh")


def format_price(base: int, *, quote_decimals: int = PRICE_DECIMALS, min_places: int = 3) -> str:
    """The book's price -> EUR/kWh."""
    return format_units(base, quote_decimals, min_places=min_places)


def quote_for(amount: int, price: int, *, base_decimals: int = ENT_DECIMALS) -> int:
    """What `amount` base units cost at `price` (exact on the book's lots and ticks)."""
    return amount * price // 10**base_decimals


# Fractions, HVT, durations --------------------------------------------------------------


def parse_fraction(text: str, *, what: str = "fraction") -> int:
    """`0.2` or `20%` -> wad."""
    raw = str(text).strip()
    if raw.endswith("%"):
        return parse_units(raw[:-1].strip(), WAD_DECIMALS - 2, what=what, unit="%")
    return parse_units(raw, WAD_DECIMALS, what=what)


def format_fraction(wad: int) -> str:
    """wad -> `0.2 (20%)`."""
    return f"{format_units(wad, WAD_DECIMALS)} ({format_units(wad, WAD_DECIMALS - 2)}%)"


TARIFF_DECIMALS = 4  # a hive tariff: 1e-4 of the coin's unit per kWh (2000 = 0.20 per kWh)
BPS_DECIMALS = 2  # basis points as a percentage: 250 bps = 2.5%


def parse_tariff(text: str, *, what: str = "tariff") -> int:
    """Coin per kWh (`0.2`) -> the hive market's tariff unit, 1e-4 coin per kWh (2000)."""
    return parse_units(text, TARIFF_DECIMALS, what=what, unit="per kWh")


def format_tariff(value: int) -> str:
    return format_units(value, TARIFF_DECIMALS, min_places=2)


def parse_bps(text: str, *, what: str = "fee") -> int:
    """`2.5%` -> 250 basis points (the percent sign is required: no bare numbers)."""
    raw = str(text).strip()
    if not raw.endswith("%"):
        raise AmountError(f"{what} {text!r}: give a percentage, e.g. 0.5%")
    return parse_units(raw[:-1].strip(), BPS_DECIMALS, what=what, unit="%")


def format_bps(value: int) -> str:
    return f"{format_units(value, BPS_DECIMALS)}% ({value} bps)"


def parse_hvt(text: str, *, what: str = "amount") -> int:
    return parse_units(text, HVT_DECIMALS, what=what, unit="HVT")


def format_hvt(base: int) -> str:
    return format_units(base, HVT_DECIMALS)


def parse_duration(text: str, *, what: str = "duration") -> int:
    """`900`, `900s`, `15m`, `2h` or `7d` -> seconds."""
    raw = str(text).strip().lower()
    match = _DURATION.match(raw)
    if not match:
        raise AmountError(f"{what} {text!r}: not a whole number of s, m, h or d")
    return int(match[1]) * _SECONDS[match[2]]


def format_duration(seconds: int) -> str:
    """Seconds -> `7d`, `1h 30m`, `45s`."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)


def check_multiple(value: int, step: int, *, what: str, show) -> None:
    """`value` must be a multiple of `step` (a lot or a tick); `show` formats both."""
    if step and value % step:
        raise AmountError(f"{what} {show(value)} is not a multiple of {show(step)}")
