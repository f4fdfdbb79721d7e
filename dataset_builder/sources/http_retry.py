"""The crawler's retry policy: which answers are worth another attempt, and how long to wait before it (tenacity)."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections.abc import Callable

import httpx
import tenacity

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 120.0
MAX_RETRY_AFTER_S = 300.0  # a server's Retry-After is honoured up to this


class RetryableStatus(Exception):
    """A 5xx or 429 answer: worth another attempt after a wait (at least the server's Retry-After)."""

    def __init__(self, status: int, retry_after: float | None):
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


def retrying(retries: int, backoff: float, url: str) -> tenacity.Retrying:
    """Up to `retries` extra attempts at `url` on 5xx, 429 and connection errors, waiting as `backoff_wait` says."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=backoff_wait(backoff),
        retry=tenacity.retry_if_exception_type((RetryableStatus, httpx.TransportError)),
        before_sleep=lambda state: logger.info("retrying %s after %s", url, state.outcome.exception()),
        reraise=True,
    )


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def backoff_wait(backoff: float) -> Callable[[tenacity.RetryCallState], float]:
    """Tenacity wait: `backoff` seconds doubled each retry, or the server's Retry-After if longer (capped)."""
    exponential = tenacity.wait_exponential(multiplier=backoff, max=MAX_BACKOFF_S)

    def wait(state: tenacity.RetryCallState) -> float:
        seconds = exponential(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableStatus) and error.retry_after:
            seconds = max(seconds, min(error.retry_after, MAX_RETRY_AFTER_S))
        return seconds

    return wait


__all__ = ["MAX_BACKOFF_S", "MAX_RETRY_AFTER_S", "RetryableStatus", "backoff_wait", "retry_after", "retrying"]
