"""The Returning.AI Integration API: response models and the client."""

from community_milestones.returning_ai.client import ReturningAIClient, TokenProvider
from community_milestones.returning_ai.models import ActivityCounts, ActivityStats, DailyActivity, StatsRange

__all__ = ["ActivityCounts", "ActivityStats", "DailyActivity", "ReturningAIClient", "StatsRange", "TokenProvider"]
