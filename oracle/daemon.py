"""What the three long-running services (`oracle run`, `oracle queen`, `oracle relay`) share
around their loops: the health and metrics endpoint built from `[service]`, the state lock
held while a service opens (released when opening fails), and the close that stops the
endpoint, closes the rest and releases the lock whatever fails on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from oracle.chain_settings import ServiceSettings
from oracle.errors import StateError
from oracle.metrics import HttpEndpoint, Route
from oracle.statelock import StateLock

log = logging.getLogger("oracle.daemon")


def health_endpoint(
    settings: ServiceSettings,
    metrics: Any,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    routes: dict[str, Route] | None = None,
    *,
    thread_name: str,
    serves: str = "health and metrics",
) -> HttpEndpoint | None:
    """The service's `/health` and `/metrics` endpoint (and `routes`), not started yet; None
    when `http_enabled` is off. A port that cannot be bound is one `StateError` line."""
    if not settings.http_enabled:
        return None
    try:
        return HttpEndpoint(
            settings.http_host,
            settings.http_port,
            metrics,
            health,
            routes,
            thread_name=thread_name,
        )
    except OSError as exc:
        raise StateError(
            f"cannot serve {serves} on {settings.http_host}:{settings.http_port}: "
            f"{exc.strerror or exc}"
        ) from None


@contextmanager
def released_on_failure(lock: StateLock) -> Iterator[StateLock]:
    """`lock` for a service being opened: released if opening fails, else kept (the service
    releases it when it closes)."""
    try:
        yield lock
    except BaseException:
        lock.release()
        raise


def close_service(
    http: HttpEndpoint | None, lock: StateLock | None, *closers: Callable[[], None]
) -> None:
    """Stop the endpoint, run each closer (a failure logged, the next one still run), then
    release the state lock: a driver that fails to close never keeps the lock held."""
    if http is not None:
        http.stop()
    for close in closers:
        try:
            close()
        except Exception:
            log.exception("closing failed", extra={"what": getattr(close, "__qualname__", "")})
    if lock is not None:
        lock.release()
