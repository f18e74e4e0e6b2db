"""Milestone rules: a declarative rules file and its pure evaluation."""

from community_milestones.rules.evaluate import MilestoneReached, evaluate
from community_milestones.rules.model import (
    ActiveDaysRule,
    MilestoneRule,
    RuleSet,
    StreakRule,
    WindowTotalRule,
    load_rules,
)

__all__ = [
    "ActiveDaysRule",
    "MilestoneReached",
    "MilestoneRule",
    "RuleSet",
    "StreakRule",
    "WindowTotalRule",
    "evaluate",
    "load_rules",
]
