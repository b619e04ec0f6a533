"""Every meter driver at protocol level, without hardware (SPEC §11)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from oracle.drivers import DriverContext, Reading, driver_class, driver_names
from oracle.drivers.base import floor_wh, nearest_wh
from oracle.errors import MeterError, UnknownDriverError
from tests.oracle.fakes import SAMPLE_V5, P1Server, SdmSimulator, ShellyFake, kwh, telegram


def make(name: str, **options):
    cls = driver_class(name)
    return cls(cls.Options(**options), DriverContext(meter="m"))


# -- registry ---------------------------------------------------------------------------------


def test_registry_lists_every_driver_module():
    assert driver_names() == ("dsmr", "sdm", "shelly", "simulated", "smartpi")
    for name in driver_names():
        assert driver_class(name).__module__ == f"oracle.drivers.{name}"


def test_unknown_driver_names_the_known_ones():
    with pytest.raises(UnknownDriverError, match=r"unknown driver 'ferraris' \(known: dsmr, sdm"):
        driver_class("ferraris")


def test_reading_refuses_negative_or_fractional_counters():
    with pytest.raises(MeterError):
        Reading(ts=0, import_wh=-1, export_wh=0)
    with pytest.raises(MeterError):
        Reading(ts=0, import_wh=1.5, export_wh=0)


def test_conversions_are_exact_and_monotonic():
    assert floor_wh("12345.67890000") == 12345
    assert floor_wh("4.426", 1000) == 4426
    # float32 2.399 kWh is 2.39899992...: the meter shows 2.399, so does the driver.
    import struct

    f32 = struct.unpack(">f", struct.pack(">f", 2.399))[0]
    assert f32 < 2.399 and nearest_wh(f32) == 2399
    with pytest.raises(MeterError):
        floor_wh("nan")


# -- simulated --------------------------------------------------------------------------------


def sim(tmp_path=None, **options):
    cls = driver_class("simulated")
    return cls(cls.Options(**options), DriverContext("sim", tmp_path))


@pytest.mark.parametrize("profile", ["pv", "household", "battery"])
def test_simulated_day_is_plausible_and_monotonic(profile):
    meter = sim(profile=profile, peak_w=4000, seed=3)
    previous = meter.counters_at(0)
    for minute in range(0, 24 * 60 + 1, 7):
        r = meter.counters_at(minute * 60.0)
        assert r.import_wh >= previous.import_wh and r.export_wh >= previous.export_wh
        # Never above the profile's peak (plus base load) times the time.
        limit = (4000 + 250) * 7 / 60 + 1
        assert r.import_wh - previous.import_wh <= limit
        assert r.export_wh - previous.export_wh <= limit
        previous = r
    day = meter.counters_at(86_400)
    if profile == "pv":
        assert 10_000 < day.export_wh < 4000 * 24 and day.import_wh < 400
        # No sun at 03:00, sun at noon.
        assert meter.power_w(3 * 60)[1] == 0 and meter.power_w(12 * 60)[1] > 2000
    if profile == "household":
        assert day.export_wh == 0 and day.import_wh > 250 * 24 * 0.8
    if profile == "battery":
        assert day.stored_wh is not None and 0 <= day.stored_wh <= 10_000


def test_simulated_counters_are_a_function_of_time_and_seed():
    a, b = sim(seed=5), sim(seed=5)
    # Out of order and repeated queries give the same answer.
    t = [5000.0, 100.0, 43_210.5, 5000.0]
    assert [a.counters_at(x).export_wh for x in t] == [b.counters_at(x).export_wh for x in t]
    assert sim(seed=6).counters_at(50_000).export_wh != a.counters_at(50_000).export_wh


def test_simulated_clock_is_compressed_and_survives_restarts(tmp_path):
    first = sim(tmp_path, compression=3600.0)  # an hour a second
    r1 = first.read()
    time.sleep(0.2)
    again = sim(tmp_path, compression=3600.0)  # a "restarted" process
    r2 = again.read()
    assert r2.clock == r1.clock  # same anchor, same clock domain
    assert 0.2 * 3600 <= r2.monotonic - r1.monotonic < 2 * 3600
    start = datetime(2024, 6, 21, tzinfo=UTC).timestamp()
    assert r2.ts == pytest.approx(start + r2.monotonic)
    # Changing the options starts a new clock.
    assert sim(tmp_path, compression=60.0).read().clock != r1.clock


# -- SmartPi counter files --------------------------------------------------------------------


def test_smartpi_reads_counter_files(tmp_path):
    (tmp_path / "consumecounter").write_text("12345.67890000")
    (tmp_path / "producecounter").write_text("42.99999999")
    (tmp_path / "stored").write_text("5000.5\n")
    meter = make("smartpi", counter_dir=tmp_path, stored_file="stored")
    r = meter.read()
    assert (r.import_wh, r.export_wh, r.stored_wh) == (12345, 42, 5000)


def test_smartpi_missing_or_garbled_file_is_a_meter_error(tmp_path):
    meter = make("smartpi", counter_dir=tmp_path)
    with pytest.raises(MeterError, match="no such counter file"):
        meter.read()
    (tmp_path / "consumecounter").write_text("")  # caught mid-rewrite
    (tmp_path / "producecounter").write_text("1.0")
    with pytest.raises(MeterError, match="unreadable"):
        meter.read()


def test_smartpi_waits_for_a_stable_value(tmp_path):
    """SmartPi truncates and rewrites the file: a read mid-write must not pass as a reset."""
    path = tmp_path / "consumecounter"
    path.write_text("")
    (tmp_path / "producecounter").write_text("0")

    def writer() -> None:
        time.sleep(0.015)
        path.write_text("777.25000000")

    thread = threading.Thread(target=writer)
    thread.start()
    r = make("smartpi", counter_dir=tmp_path, attempts=20).read()
    thread.join()
    assert r.import_wh == 777


# -- Eastron SDM over Modbus RTU --------------------------------------------------------------


@pytest.mark.parametrize("model", ["sdm120", "sdm630"])
def test_sdm_reads_import_and_export_registers(model):
    with SdmSimulator(device_id=7) as sdm:
        sdm.import_kwh, sdm.export_kwh = 1234.567, 2.399
        meter = make("sdm", model=model, port=sdm.url, device_id=7, timeout_s=1)
        r = meter.read()
        assert (r.import_wh, r.export_wh) == (1234567, 2399)
        sdm.import_kwh += 0.25
        assert meter.read().import_wh == 1234817
        meter.close()
        assert sdm.requests == 2


def test_sdm_meters_share_one_bus():
    """Two meters on one RS-485 line, told apart by device id, read in turn."""
    with SdmSimulator(device_id=2) as sdm:
        first = make("sdm", port=sdm.url, device_id=2, timeout_s=1)
        second = make("sdm", port=sdm.url, device_id=2, timeout_s=1)
        sdm.import_kwh = 5.0
        assert first.read().import_wh == second.read().import_wh == 5000


def test_sdm_silent_device_is_a_meter_error():
    with SdmSimulator(device_id=1) as sdm:
        meter = make("sdm", port=sdm.url, device_id=9, timeout_s=0.2, retries=0)
        with pytest.raises(MeterError):
            meter.read()
        meter.close()


def test_sdm_unreachable_port_is_a_meter_error():
    meter = make("sdm", port="socket://127.0.0.1:1", timeout_s=0.2, retries=0)
    with pytest.raises(MeterError, match="cannot open"):
        meter.read()


# -- DSMR P1 ----------------------------------------------------------------------------------


def test_dsmr_parses_the_v5_sample_telegram():
    with P1Server() as p1:
        p1.telegram = SAMPLE_V5
        meter = make("dsmr", port=p1.url, timeout_s=3)
        r = meter.read()
        meter.close()
    # 1.8.1 + 1.8.2 = 4.426 + 2.399 kWh; 2.8.1 + 2.8.2 = 2.444 + 0 kWh.
    assert (r.import_wh, r.export_wh) == (6825, 2444)


def test_dsmr_takes_the_current_telegram_not_a_buffered_one():
    with P1Server(interval_s=0.02) as p1:
        meter = make("dsmr", port=p1.url, timeout_s=3)
        p1.telegram = telegram(kwh(1000), kwh(2000), kwh(10), kwh(5))
        assert meter.read().import_wh == 3000
        time.sleep(0.3)  # old telegrams pile up in the socket buffer
        p1.telegram = telegram(kwh(1500), kwh(2000), kwh(10), kwh(6))
        time.sleep(0.1)
        r = meter.read()
        meter.close()
    assert (r.import_wh, r.export_wh) == (3500, 16)


def test_dsmr_rejects_corrupted_telegrams():
    corrupted = SAMPLE_V5.replace(b"1-0:1.8.1(000004.426", b"1-0:1.8.1(000009.426")
    with P1Server() as p1:
        p1.telegram = corrupted
        meter = make("dsmr", port=p1.url, timeout_s=0.5)
        with pytest.raises(MeterError, match="bad telegram"):
            meter.read()
        meter.close()


# -- Shelly Gen2 HTTP RPC ---------------------------------------------------------------------


def test_shelly_emdata_totals():
    with ShellyFake("emdata") as shelly:
        shelly.import_wh, shelly.export_wh = 123456.78, 987.65
        meter = make("shelly", host=shelly.host)
        r = meter.read()
        assert (r.import_wh, r.export_wh) == (123456, 987)
        assert shelly.calls[-1]["method"] == "EMData.GetStatus"
        assert shelly.calls[-1]["params"] == {"id": 0}


def test_shelly_em1data_totals():
    with ShellyFake("em1data") as shelly:
        shelly.import_wh, shelly.export_wh = 10.5, 3.0
        r = make("shelly", host=shelly.host, component="em1data").read()
        assert (r.import_wh, r.export_wh) == (10, 3)


def test_shelly_errors_are_meter_errors():
    with ShellyFake("em1data") as shelly:
        with pytest.raises(MeterError, match="No handler for EMData.GetStatus"):
            make("shelly", host=shelly.host).read()
        shelly.fail_next = 1
        with pytest.raises(MeterError, match="500"):
            make("shelly", host=shelly.host, component="em1data").read()
    with pytest.raises(MeterError):
        make("shelly", host="127.0.0.1:1", timeout_s=0.5).read()
