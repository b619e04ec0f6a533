"""The stop request in process: exactly one stop whatever order and nesting signals arrive in."""

from __future__ import annotations

import logging
import signal

from oracle import lifecycle
from oracle.lifecycle import StopRequest


def _messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "oracle"]


def test_a_signal_inside_the_first_handler_is_not_a_second_stop(caplog, monkeypatch):
    """Python runs a signal handler between bytecodes, so a second signal can run its handler
    inside the first one's, after its check and before the stop is set: it must still be a
    signal 'during shutdown', and the callbacks run once."""
    request = StopRequest()
    stops: list[str] = []
    request.on_stop(lambda: stops.append("stop"))
    real_info = lifecycle.log.info
    nested = []

    def info(msg, *args, **kwargs):
        real_info(msg, *args, **kwargs)
        if "received" in msg and not nested:
            nested.append(True)
            request._on_signal(signal.SIGINT, None)  # arrives while the first handler runs

    monkeypatch.setattr(lifecycle.log, "info", info)
    with caplog.at_level(logging.INFO, logger="oracle"):
        request._on_signal(signal.SIGTERM, None)
        request._on_signal(signal.SIGINT, None)
    messages = _messages(caplog)
    assert messages == [
        "SIGTERM received: stopping",
        "SIGINT during shutdown: already stopping",
        "SIGINT during shutdown: already stopping",
    ]
    assert request.requested and request.signal == "SIGTERM"
    assert stops == ["stop"]


def test_a_signal_after_a_requested_stop_is_during_shutdown(caplog):
    request = StopRequest()
    request.request()
    with caplog.at_level(logging.INFO, logger="oracle"):
        request._on_signal(signal.SIGINT, None)
    assert _messages(caplog) == ["SIGINT during shutdown: already stopping"]
    assert request.signal is None
