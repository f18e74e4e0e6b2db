"""Registered members and their scan schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from community_milestones.members import MemberRef
from community_milestones.storage.keys import DUE_INDEX, PROFILE_SK, member_pk, scan_shard

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


@dataclass(frozen=True, slots=True)
class DueMember:
    """A member whose next scan is due, with the schedule value seen when it was found."""

    member: MemberRef
    next_scan_at: int
    community_id: str | None = None


class MemberStore:
    """Registers members and tracks when each one is next due for a scan."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def register(self, member: MemberRef, *, now: datetime, event_type: str, community_id: str | None = None) -> None:
        """Record the member, or refresh it; a new member is due at the next scan."""
        names = {"#entity": "entity"}
        values: dict[str, Any] = {
            ":entity": "member",
            ":identifier": member.identifier,
            ":identifier_type": member.identifier_type,
            ":event_type": event_type,
            ":now": now.isoformat(),
            ":shard": scan_shard(member),
            ":due": int(now.timestamp()),
        }
        assignments = [
            "#entity = :entity",
            "identifier = :identifier",
            "identifier_type = :identifier_type",
            "last_event_type = :event_type",
            "last_event_at = :now",
            "registered_at = if_not_exists(registered_at, :now)",
            "scan_shard = if_not_exists(scan_shard, :shard)",
            "next_scan_at = if_not_exists(next_scan_at, :due)",
        ]
        if community_id is not None:
            assignments.append("community_id = :community_id")
            values[":community_id"] = community_id

        self._table.update_item(
            Key={"pk": member_pk(member), "sk": PROFILE_SK},
            UpdateExpression="SET " + ", ".join(assignments) + " REMOVE retired_at, retired_reason",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def due(
        self, shard: str, *, now: datetime, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[DueMember], dict[str, Any] | None]:
        """One page of the shard's members whose next scan is at or before `now`, and where the next page starts."""
        query: dict[str, Any] = {
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": Key("scan_shard").eq(shard) & Key("next_scan_at").lte(int(now.timestamp())),
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        page = self._table.query(**query)

        due = [
            DueMember(
                member=MemberRef(identifier=str(item["identifier"]), identifier_type=item["identifier_type"]),
                next_scan_at=int(item["next_scan_at"]),  # type: ignore[arg-type]
                community_id=str(item["community_id"]) if item.get("community_id") else None,
            )
            for item in page.get("Items", [])
        ]
        return due, page.get("LastEvaluatedKey")

    def claim(self, due: DueMember, *, next_scan_at: int, now: datetime, claimant: str = "") -> bool:
        """Move the member's next scan to `next_scan_at` unless another scan already did; True when claimed.

        `claimant` names the scan run, so a claim whose answer was lost and retried is still known as its own.
        """
        try:
            self._table.update_item(
                Key={"pk": member_pk(due.member), "sk": PROFILE_SK},
                UpdateExpression="SET next_scan_at = :next, last_scanned_at = :now, claimed_by = :claimant",
                ConditionExpression="next_scan_at = :seen AND next_scan_at <= :due",
                ExpressionAttributeValues={
                    ":next": next_scan_at,
                    ":seen": due.next_scan_at,
                    ":due": int(now.timestamp()),
                    ":now": now.isoformat(),
                    ":claimant": claimant,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # botocore retries a call whose answer was lost; the first attempt may have been ours.
            current: dict[str, Any] = dict(exc.response.get("Item", {}))  # type: ignore[call-overload]
            return bool(
                claimant
                and current.get("claimed_by", {}).get("S") == claimant
                and current.get("next_scan_at", {}).get("N") == str(next_scan_at)
            )
        return True

    def release(self, due: DueMember, *, claimed_next_scan_at: int) -> None:
        """Undo a claim whose work could not be enqueued, so the next scan picks the member up again."""
        try:
            self._table.update_item(
                Key={"pk": member_pk(due.member), "sk": PROFILE_SK},
                UpdateExpression="SET next_scan_at = :seen",
                ConditionExpression="next_scan_at = :claimed",
                ExpressionAttributeValues={":seen": due.next_scan_at, ":claimed": claimed_next_scan_at},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def retire(self, member: MemberRef, *, now: datetime, reason: str) -> None:
        """Take a member the platform does not know out of the scans; a new delivery registers it again."""
        try:
            self._table.update_item(
                Key={"pk": member_pk(member), "sk": PROFILE_SK},
                UpdateExpression="REMOVE scan_shard, next_scan_at SET retired_at = :now, retired_reason = :reason",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": now.isoformat(), ":reason": reason[:300]},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
