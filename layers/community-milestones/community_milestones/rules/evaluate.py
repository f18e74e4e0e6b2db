"""Pure evaluation of milestone rules over one member's activity stats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import singledispatch

from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules.model import ActiveDaysRule, RuleSet, StreakRule, WindowTotalRule


@dataclass(frozen=True, slots=True)
class MilestoneReached:
    """A milestone the stats reach, with the value that reached it."""

    milestone_id: str
    kind: str
    metric: str
    value: int
    threshold: int


def evaluate(rules: RuleSet, stats: ActivityStats) -> list[MilestoneReached]:
    """Every milestone of `rules` that `stats` reach, in the order of the rules file."""
    reached = []
    for rule in rules.milestones:
        value = measure(rule, stats)
        threshold = rule.threshold if isinstance(rule, WindowTotalRule) else rule.days
        if value >= threshold:
            reached.append(MilestoneReached(rule.id, rule.kind, rule.metric, value, threshold))
    return reached


@singledispatch
def measure(rule: object, stats: ActivityStats) -> int:
    """The value of the stats that the rule compares with its threshold."""
    raise TypeError(f"no measure for {type(rule).__name__}")


@measure.register
def _window_total(rule: WindowTotalRule, stats: ActivityStats) -> int:
    return stats.totals.value(rule.metric)


@measure.register
def _active_days(rule: ActiveDaysRule, stats: ActivityStats) -> int:
    return sum(1 for count in stats.daily(rule.metric).values() if count >= rule.min_per_day)


@measure.register
def _streak(rule: StreakRule, stats: ActivityStats) -> int:
    active = {day for day, count in stats.daily(rule.metric).items() if count >= rule.min_per_day}
    return longest_run(active)


def longest_run(days: set[date]) -> int:
    """The length of the longest run of consecutive calendar days, whatever their order."""
    longest = 0
    for day in days:
        if day - timedelta(days=1) in days:
            continue
        length = 1
        while day + timedelta(days=length) in days:
            length += 1
        longest = max(longest, length)
    return longest
