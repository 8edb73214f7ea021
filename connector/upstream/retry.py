"""When a repeatable call to InstaMsg is sent again, and after how long."""

from __future__ import annotations

import random
import time

from connector.errors import ApiError, ConnectorError, UpstreamUnavailable
from connector.upstream.outcomes import status_rule


class RetryPolicy:
    """When and how long to wait before sending a repeatable call again.

    Capped exponential backoff with jitter, or the upstream's Retry-After when it
    gives one; at most ``retries`` more attempts, and never past ``deadline``
    seconds from the first. Tests pin ``jitter`` and replace ``sleep``.
    """

    def __init__(self, retries=3, base=0.25, cap=8.0, deadline=60.0):
        self.retries, self.base, self.cap, self.deadline = retries, base, cap, deadline

    def jitter(self) -> float:
        return random.uniform(0.5, 1.0)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def clock(self) -> float:
        return time.monotonic()

    def backoff(self, attempt: int) -> float:
        return min(self.cap, self.base * 2**attempt) * self.jitter()

    def wait_before(self, attempt: int, error: ConnectorError, started: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.retries or not error.retryable:
            return None
        if not isinstance(error, (ApiError, UpstreamUnavailable)):
            return None  # a timeout may have taken effect upstream: not repeated here
        if isinstance(error, ApiError) and not status_rule(error.upstream["status"]).resend:
            return None
        wait = error.retry_after_s if error.retry_after_s is not None else self.backoff(attempt)
        if self.clock() + wait > started + self.deadline:
            return None
        return wait
