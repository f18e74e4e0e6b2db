"""When to try a failed evaluation again."""

from __future__ import annotations

import math
from dataclasses import dataclass

from community_milestones.errors import OutOfTime, PlatformUnavailable

MAX_DELAY_SECONDS = 6 * 3600
"""SQS hides a received message for twelve hours at the most, counted from the receive; half of that is safe."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between attempts, or longer when the platform asks for it with Retry-After.

    Parameters:
        base_seconds: the wait after the first failed attempt; it doubles with each further one.
        max_seconds: the longest backoff.

    Example::

        RetryPolicy(base_seconds=30, max_seconds=900).delay(PlatformUnavailable("503"), receive_count=3)  # 120
    """

    base_seconds: int = 30
    max_seconds: int = 900

    def delay(self, exc: Exception, receive_count: int) -> int:
        """Seconds to wait before the next attempt of work that failed on its `receive_count`th receive."""
        if isinstance(exc, OutOfTime):
            return 0
        backoff = min(self.base_seconds << max(0, receive_count - 1), self.max_seconds)
        if isinstance(exc, PlatformUnavailable) and exc.retry_after is not None:
            # A short Retry-After must not burn every attempt within seconds of a long rate limit.
            return min(max(math.ceil(exc.retry_after), backoff), MAX_DELAY_SECONDS)
        return backoff
