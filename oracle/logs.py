"""Structured logs: one JSON object per line on stderr (journald keeps them), or plain text.

Call sites log a short message plus fields: `log.info("report confirmed", extra={"seq": 7})`
becomes `{"ts": "...", "level": "info", "logger": "oracle.service", "msg": "report
confirmed", "seq": 7}`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(fields_of(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = fields_of(record)
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


def _handler(stream: TextIO, fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def setup_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """For `oracle run` (a process of its own): the `oracle` loggers at `level`, warnings from
    libraries, all to `stream` (stderr: journald keeps it)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_handler(stream or sys.stderr, fmt))
    root.setLevel(logging.WARNING)
    logging.getLogger("oracle").setLevel(level)
    # pymodbus reports each failed frame at ERROR; the driver's MeterError says it once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@contextmanager
def oracle_logs_to(stream: TextIO, level: str = "INFO", fmt: str = "json") -> Iterator[None]:
    """For a host process (the demo, the benchmark): only the `oracle` loggers, only while
    inside, and the host's own logging untouched."""
    logger = logging.getLogger("oracle")
    handler = _handler(stream, fmt)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
