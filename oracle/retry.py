"""The services' retry policy (tenacity): exponential backoff with jitter up to a ceiling,
for as long as the service is not stopping, sleeping on the stop event so a stop is prompt.

Shared by the meter service's sender and the relayer's loop; the chain client keeps its own
short per-call retries (`oracle.chain`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter


def until_stopped(
    stop: threading.Event,
    *,
    retry_max_s: float,
    retry_on: Callable[[BaseException], bool],
    before_sleep: Callable[[RetryCallState], None] | None = None,
    multiplier: float = 0.5,
    jitter: float = 0.5,
) -> Retrying:
    """A `Retrying` that retries exceptions `retry_on` accepts, waiting 0.5 s, 1 s, 2 s, ...
    up to `retry_max_s` (plus jitter), until `stop` is set; the last exception is re-raised."""
    return Retrying(
        retry=retry_if_exception(retry_on),
        wait=wait_exponential_jitter(multiplier=multiplier, max=retry_max_s, jitter=jitter),
        stop=lambda state: stop.is_set(),
        sleep=lambda seconds: stop.wait(seconds),
        before_sleep=before_sleep,
        reraise=True,
    )


def backoff(failures: int, retry_max_s: float, *, multiplier: float = 0.5) -> float:
    """The wait after `failures` consecutive failures: the same exponential curve as
    `until_stopped` (0.5 s, 1 s, 2 s, ... up to `retry_max_s`), without jitter, for loops
    that keep several independent backoffs (one per chain)."""
    return min(retry_max_s, multiplier * 2 ** max(0, failures - 1))
