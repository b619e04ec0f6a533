"""Meter drivers and their registry.

A driver is one module in this package that exposes `DRIVER`, a `MeterDriver` subclass; the
module's name is the driver's name in `oracle.toml` (`driver = "sdm"`). Adding a meter type is
adding one module: nothing else lists the drivers.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from oracle.drivers.base import DriverContext, DriverOptions, MeterDriver, Reading
from oracle.errors import UnknownDriverError

__all__ = [
    "DriverContext",
    "DriverOptions",
    "MeterDriver",
    "Reading",
    "driver_class",
    "driver_names",
]

_NOT_DRIVERS = {"base"}


@cache
def driver_names() -> tuple[str, ...]:
    """The names of the driver modules shipped in this package, sorted."""
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(__path__)
            if not info.name.startswith("_") and info.name not in _NOT_DRIVERS
        )
    )


def driver_class(name: str) -> type[MeterDriver]:
    """The driver class for `name`; `UnknownDriverError` names the known ones otherwise."""
    if name not in driver_names():
        raise UnknownDriverError(f"unknown driver {name!r} (known: {', '.join(driver_names())})")
    module = importlib.import_module(f"{__name__}.{name}")
    driver = getattr(module, "DRIVER", None)
    if not (isinstance(driver, type) and issubclass(driver, MeterDriver)):
        raise UnknownDriverError(f"module oracle.drivers.{name} does not define DRIVER")
    return driver
