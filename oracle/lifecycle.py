"""Stopping on a signal: one handler for SIGTERM and SIGINT from the very start of `oracle run`.

The handler is installed before the configuration, the keystore or the chain are touched, so
a signal that arrives while the service is still starting (systemd stopping a unit that is
slow to come up, Ctrl-C during the keystore's key derivation) is a clean stop, exit 0, like a
signal while running. Every further signal during the shutdown is logged and ignored: the
drain that is under way finishes, and the exit status stays 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger("oracle")

# SIGTERM last: once it is caught, both are (tests wait on that in /proc/<pid>/status).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set once by the first stop signal (or `request()`); callbacks run once, in order."""

    def __init__(self) -> None:
        self._event = threading.Event()
        # Taken by the first stop signal. A test-and-set, not a flag: Python runs a handler
        # between bytecodes of the main thread, so a second signal can run its handler
        # inside the first one's, before a flag is set (seen: two "received: stopping").
        self._first = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.signal: str | None = None

    @classmethod
    def install(cls) -> StopRequest:
        """A request wired to SIGTERM and SIGINT (call from the main thread)."""
        request = cls()
        for sig in STOP_SIGNALS:
            signal.signal(sig, request._on_signal)
        return request

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Runs `callback` at the stop, or now if the stop was already requested."""
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def request(self) -> None:
        if self._event.is_set():
            return
        self._event.set()
        for callback in self._callbacks:
            callback()

    def exit(self, code: int) -> NoReturn:
        """Ends the process with `code`, the stop handler installed to the last instruction.

        A normal interpreter exit resets the handlers of SIGINT and SIGTERM to the default
        while it finalizes (CPython's signal module does), so a signal arriving in that window
        (a second Ctrl-C, systemd's SIGTERM after a SIGINT, seen on a loaded host) killed a
        service that had already stopped cleanly: exit -2 instead of 0. The service has
        joined its threads and closed its files by now; flush what is buffered and leave.
        """
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested or not self._first.acquire(blocking=False):
            log.info("%s during shutdown: already stopping", name, extra={"signal": name})
            return
        self.signal = name
        log.info("%s received: stopping", name, extra={"signal": name})
        self.request()


class CrashPoints:
    """Fault injection for the crash tests, off unless `POWERHIVE_ORACLE_CRASHPOINT` is set.

    `POWERHIVE_ORACLE_CRASHPOINT=after_broadcast:3` kills the process with SIGKILL the third
    time the sender passes `after_broadcast` (other points: `before_broadcast`,
    `after_receipt`), exactly as a power cut or the OOM killer would.
    """

    ENV = "POWERHIVE_ORACLE_CRASHPOINT"

    def __init__(self, spec: str | None = None, *, env: str | None = None):
        spec = os.environ.get(env or self.ENV) if spec is None else spec
        self.name, self.at, self.seen = None, 0, 0
        if spec:
            name, _, at = spec.partition(":")
            self.name, self.at = name, int(at or 1)

    def hit(self, name: str) -> None:
        if name != self.name:
            return
        self.seen += 1
        if self.seen == self.at:
            log.warning("crash point reached: SIGKILL", extra={"point": name})
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
