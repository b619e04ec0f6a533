"""Human units <-> base units: exact, and too many decimals is an error."""

import pytest

from powerhive import units
from powerhive.errors import AmountError
from powerhive.market import Level, collect_pages, preview


@pytest.mark.parametrize(
    "text, decimals, base",
    [
        ("1", 18, 10**18),
        ("0.001", 18, 10**15),
        ("2.5", 6, 2_500_000),
        (".5", 6, 500_000),
        ("0.210", 6, 210_000),
        ("3.", 3, 3000),
        ("0.000001", 6, 1),
        ("1.500000", 6, 1_500_000),
    ],
)
def test_parse_exact(text, decimals, base):
    assert units.parse_units(text, decimals) == base


@pytest.mark.parametrize("text", ["", "-1", "+1", "1e3", "1,5", "nan", "inf", "0x10", "1.2.3"])
def test_parse_rejects_non_numbers(text):
    with pytest.raises(AmountError, match="not a non-negative decimal"):
        units.parse_units(text, 6)


def test_too_many_decimals_is_an_error():
    with pytest.raises(AmountError, match="too many decimals"):
        units.parse_eur("1.0000001")
    with pytest.raises(AmountError, match="too many decimals"):
        units.parse_energy_wh("1.0001")
    with pytest.raises(AmountError, match="too many decimals"):
        units.parse_kwh("0." + "0" * 18 + "1")
    assert units.parse_kwh("0." + "0" * 17 + "1") == 1


def test_format_is_exact_and_round_trips():
    assert units.format_kwh(10**18 // 3) == "0.333333333333333333"
    assert units.format_eur(1) == "0.000001"
    assert units.format_eur(12_345_670_000) == "12,345.67"
    assert units.format_price(210_000) == "0.210"
    assert units.format_wh(7_500) == "7.500"
    assert units.format_units(-25 * 10**17, 18) == "-2.5"
    for value in (0, 1, 999_999, 10**18 + 7):
        assert units.parse_units(units.format_units(value, 18, group=False), 18) == value


def test_fractions_durations_and_prices():
    assert units.parse_fraction("0.2") == units.parse_fraction("20%") == 2 * 10**17
    assert units.format_fraction(2 * 10**17) == "0.2 (20%)"
    assert units.parse_duration("7d") == 7 * 86400 and units.parse_duration("900") == 900
    assert units.format_duration(5400) == "1h 30m"
    with pytest.raises(AmountError):
        units.parse_duration("1.5h")
    # A book price is eEuro base units per whole ENT: 1 Wh at 0.001 EUR/kWh is 1 base unit.
    assert units.quote_for(10**15, units.parse_price("0.001")) == 1
    with pytest.raises(AmountError, match="not a multiple"):
        units.check_multiple(1500, 1000, what="price", show=str)


def test_collect_pages_follows_the_cursor():
    pages = {0: ([1, 2], 7), 7: ([], 9), 9: ([3], 0)}
    assert collect_pages(lambda c: pages[c]) == [1, 2, 3]


def test_preview_matches_best_price_first_at_maker_prices():
    asks = [Level(200_000, 5 * 10**18, 1), Level(210_000, 10 * 10**18, 2)]
    p = preview(asks, is_buy=True, price=220_000, amount=12 * 10**18, ioc=False, min_size=10**16)
    assert [(f.price, f.amount) for f in p.fills] == [(200_000, 5 * 10**18), (210_000, 7 * 10**18)]
    assert p.quote_traded == 1_000_000 + 1_470_000 and p.rest == 0
    p = preview(asks, is_buy=True, price=205_000, amount=8 * 10**18, ioc=False, min_size=10**16)
    assert p.filled == 5 * 10**18 and p.rest == 3 * 10**18
    assert p.quote_needed() == 1_000_000 + 615_000
    p = preview(asks, is_buy=True, price=205_000, amount=8 * 10**18, ioc=True, min_size=10**16)
    assert p.rest == 0 and p.dropped == 3 * 10**18
    bids = [Level(190_000, 10**18, 1)]
    p = preview(bids, is_buy=False, price=195_000, amount=10**18, ioc=False, min_size=10**16)
    assert p.fills == [] and p.rest == 10**18
