"""Builders and readers shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from community_milestones.returning_ai.models import ActivityStats

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

# The key in events/webhook-user-joins-server.json; the `webhook` fixture's secret holds it.
EVENT_KEY = "example-webhook-key-0123456789abcdef"

# The platform's own spelling of the daily and total counts: `reaction` is singular.
PLATFORM_KEYS = ("messages", "replies", "reaction", "socials")

DayCounts = Mapping[str, int] | int


@dataclass(frozen=True, slots=True)
class Queues:
    """The work queue and its dead-letter queue, as the template defines them."""

    sqs: SQSClient
    work_url: str
    dead_letter_url: str


def make_stats(
    daily: Mapping[str, DayCounts],
    *,
    user_id: str = "188055",
    start: str | None = None,
    end: str | None = None,
    totals: Mapping[str, int] | None = None,
    zero_fill: bool = False,
) -> ActivityStats:
    """Activity stats parsed from a response shaped the way the platform sends it.

    Parameters:
        daily: counts per ISO date, listed in this order; an int is that many messages, a mapping
            uses the platform's keys (`messages`, `replies`, `reaction`, `socials`), missing keys 0.
        user_id: the platform's user id.
        start, end: the range; by default the first and last listed dates.
        totals: the window totals; by default the sums of `daily`.
        zero_fill: list every day of the range, with zeros for the days `daily` leaves out.

    Example:
        make_stats({"2025-08-18": 3, "2025-08-19": {"reaction": 2}})
    """
    days = [_platform_day(day, counts) for day, counts in daily.items()]
    listed = sorted(date.fromisoformat(day) for day in daily)
    first = date.fromisoformat(start) if start else (listed[0] if listed else date(2025, 8, 18))
    last = date.fromisoformat(end) if end else (listed[-1] if listed else first)

    if zero_fill:
        current = first
        while current <= last:
            if current.isoformat() not in daily:
                days.append(_platform_day(current.isoformat(), {}))
            current += timedelta(days=1)

    window_totals = (
        dict(totals) if totals is not None else {key: sum(day[key] for day in days) for key in PLATFORM_KEYS}
    )
    return ActivityStats.model_validate(
        {
            "user_id": user_id,
            "range": {"start_date": first.isoformat(), "end_date": last.isoformat()},
            "totals": window_totals,
            "daily_stats": days,
        }
    )


def _platform_day(day: str, counts: DayCounts) -> dict[str, Any]:
    given = {"messages": counts} if isinstance(counts, int) else dict(counts)
    unknown = set(given) - set(PLATFORM_KEYS)
    if unknown:
        raise ValueError(f"not a platform count: {', '.join(sorted(unknown))}")
    return {"date": day, **{key: given.get(key, 0) for key in PLATFORM_KEYS}}


def receive_all(sqs: SQSClient, queue_url: str) -> list[MessageTypeDef]:
    """Every message visible on the queue, with all its message attributes."""
    messages: list[MessageTypeDef] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
