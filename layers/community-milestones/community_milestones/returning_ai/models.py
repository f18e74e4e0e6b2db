"""Pydantic models of the Get User Gamification Stats response.

Parsing is tolerant where the platform's docs are silent (numeric strings for counts, user ids
that arrive as numbers, days in any order, empty days left out) and strict where the contract
is clear (no negative counts, days inside the range, a range that does not run backwards).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    StringConstraints,
    model_validator,
)


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a count must be a number, not true or false")
    return value


Count = Annotated[NonNegativeInt, Field(le=2**53), BeforeValidator(_not_a_boolean)]
"""A count of actions: a whole number, possibly sent as a numeric string, never negative."""
METRICS = ("messages", "replies", "reactions", "socials")


class ActivityCounts(BaseModel):
    """Counts of one day or of the whole window. The platform spells reactions `reaction`."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    messages: Count
    replies: Count
    reactions: Annotated[Count, Field(validation_alias=AliasChoices("reaction", "reactions"))]
    socials: Count

    @property
    def activity(self) -> int:
        """Every counted action together."""
        return self.messages + self.replies + self.reactions + self.socials

    def value(self, metric: str) -> int:
        """The count of one metric by name, `activity` being the sum of all."""
        if metric == "activity":
            return self.activity
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric!r}")
        count: int = getattr(self, metric)
        return count


class DailyActivity(ActivityCounts):
    """The counts of one calendar day, as the platform dates it."""

    date: date


class StatsRange(BaseModel):
    """The calendar dates the statistics cover, both included."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _forwards(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError(f"range ends ({self.end_date}) before it starts ({self.start_date})")
        return self


class ActivityStats(BaseModel):
    """The `data` of a stats response: one member's activity over the window."""

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    user_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    range: StatsRange
    totals: ActivityCounts
    daily_stats: list[DailyActivity] = Field(default_factory=list)

    @model_validator(mode="after")
    def _days_inside_range(self) -> Self:
        seen: set[date] = set()
        for day in self.daily_stats:
            if not self.range.start_date <= day.date <= self.range.end_date:
                raise ValueError(
                    f"daily_stats holds {day.date}, outside the range {self.range.start_date}..{self.range.end_date}"
                )
            if day.date in seen:
                raise ValueError(f"daily_stats holds {day.date} twice")
            seen.add(day.date)
        return self

    def daily(self, metric: str) -> dict[date, int]:
        """The metric per calendar day; a day that is not listed had no activity."""
        return {day.date: day.value(metric) for day in self.daily_stats}


class StatsEnvelope(BaseModel):
    """The Integration API's success envelope around the statistics."""

    model_config = ConfigDict(extra="ignore")

    status: str
    message: str | None = None
    data: ActivityStats

    @model_validator(mode="before")
    @classmethod
    def _successful(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("status") not in (None, "success"):
            raise ValueError(f"status is {value.get('status')!r}, not 'success'")
        return value
