"""Milestone records: one per member and milestone, written once and never changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from community_milestones.members import MemberRef, Trigger
from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules.evaluate import MilestoneReached
from community_milestones.storage.keys import MILESTONE_SK_PREFIX, member_pk, milestone_sk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


@dataclass(frozen=True, slots=True)
class MilestoneRecord:
    """Everything a reward system needs to know about a reached milestone."""

    member: MemberRef
    milestone: MilestoneReached
    stats: ActivityStats
    reached_at: datetime
    trigger: Trigger
    correlation_id: str
    community_id: str | None = None
    requested_as: MemberRef | None = None
    """How the evaluation named the member, when not by the platform's user id."""

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item of the record."""
        totals = self.stats.totals
        item: dict[str, Any] = {
            "pk": member_pk(self.member),
            "sk": milestone_sk(self.milestone.milestone_id),
            "entity": "milestone",
            "member_key": self.member.key,
            "identifier": self.member.identifier,
            "identifier_type": self.member.identifier_type,
            "user_id": self.stats.user_id,
            "milestone_id": self.milestone.milestone_id,
            "kind": self.milestone.kind,
            "metric": self.milestone.metric,
            "value": self.milestone.value,
            "threshold": self.milestone.threshold,
            "reached_at": self.reached_at.isoformat(),
            "trigger": self.trigger,
            "correlation_id": self.correlation_id,
            "window": {
                "start_date": self.stats.range.start_date.isoformat(),
                "end_date": self.stats.range.end_date.isoformat(),
            },
            "totals": {
                "messages": totals.messages,
                "replies": totals.replies,
                "reactions": totals.reactions,
                "socials": totals.socials,
            },
        }
        if self.community_id is not None:
            item["community_id"] = self.community_id
        if self.requested_as is not None and self.requested_as != self.member:
            item["requested_identifier"] = self.requested_as.identifier
            item["requested_identifier_type"] = self.requested_as.identifier_type
        return item


class MilestoneStore:
    """Writes milestone records exactly once per member and milestone."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def reached_ids(self, member: MemberRef) -> set[str]:
        """The ids of the milestones already recorded for the member (keys only)."""
        return {str(item["sk"]).removeprefix(MILESTONE_SK_PREFIX) for item in self._query(member, projection="sk")}

    def record(self, record: MilestoneRecord) -> bool:
        """Write the record unless it exists; True when this call wrote it.

        A record that is already there is the expected outcome of a repeated delivery or an
        overlapping scan, not an error: the first record stands and is never overwritten.
        """
        try:
            self._table.put_item(Item=record.to_item(), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def records(self, member: MemberRef) -> list[dict[str, Any]]:
        """The member's milestone records as stored."""
        return self._query(member)

    def _query(self, member: MemberRef, *, projection: str | None = None) -> list[dict[str, Any]]:
        """Every milestone item of the member, page by page."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(member_pk(member)) & Key("sk").begins_with(MILESTONE_SK_PREFIX)
        }
        if projection is not None:
            query["ProjectionExpression"] = projection
        while True:
            page = self._table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
