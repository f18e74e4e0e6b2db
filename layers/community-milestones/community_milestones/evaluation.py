"""Evaluating one member: fetch the stats, apply the rules, record what is newly reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from community_milestones.clock import Clock, utc_now
from community_milestones.members import EvaluationRequest, MemberRef
from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules import RuleSet, evaluate
from community_milestones.storage import MilestoneRecord, MilestoneStore


class StatsSource(Protocol):
    """Where a member's activity stats come from."""

    def fetch_activity_stats(self, member: MemberRef) -> ActivityStats: ...


@dataclass(frozen=True, slots=True)
class EvaluationOutcome:
    """What one evaluation found and wrote."""

    member_key: str
    reached: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    already_recorded: list[str] = field(default_factory=list)


class MemberEvaluator:
    """Turns an evaluation request into milestone records, each written once."""

    def __init__(
        self, *, stats: StatsSource, rules: RuleSet, milestones: MilestoneStore, clock: Clock = utc_now
    ) -> None:
        self._stats = stats
        self._rules = rules
        self._milestones = milestones
        self._clock = clock

    def evaluate(self, request: EvaluationRequest) -> EvaluationOutcome:
        """Evaluate the member of `request`; platform errors propagate to the caller."""
        stats = self._stats.fetch_activity_stats(request.member)
        reached = evaluate(self._rules, stats)
        # One person may arrive by user id or by email: records belong to the platform's user id.
        owner = MemberRef(identifier=stats.user_id)
        outcome = EvaluationOutcome(member_key=owner.key, reached=[item.milestone_id for item in reached])
        if not reached:
            return outcome

        recorded = self._milestones.reached_ids(owner)
        now = self._clock()
        for milestone in reached:
            if milestone.milestone_id in recorded:
                outcome.already_recorded.append(milestone.milestone_id)
                continue
            record = MilestoneRecord(
                member=owner,
                requested_as=request.member,
                milestone=milestone,
                stats=stats,
                reached_at=now,
                trigger=request.trigger,
                correlation_id=request.correlation_id,
                community_id=request.community_id,
            )
            if self._milestones.record(record):
                outcome.written.append(milestone.milestone_id)
            else:
                outcome.already_recorded.append(milestone.milestone_id)
        return outcome
