"""When to try a failed evaluation again."""

from __future__ import annotations

import math
from dataclasses import dataclass

from community_milestones.errors import OutOfTime, PlatformUnavailable

MAX_VISIBILITY_SECONDS = 43_200
"""SQS hides a message for twelve hours at the most."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between attempts, unless the platform said when to come back.

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
        if isinstance(exc, PlatformUnavailable) and exc.retry_after is not None:
            return min(math.ceil(exc.retry_after), MAX_VISIBILITY_SECONDS)
        return min(self.base_seconds << max(0, receive_count - 1), self.max_seconds)
