"""DynamoDB storage on the template's own table: members, their scan schedule, and milestone records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from pydantic import ValidationError

from community_milestones.members import MemberRef, Trigger
from community_milestones.rules import MilestoneReached
from community_milestones.storage import DueMember, MemberStore, MilestoneRecord, MilestoneStore
from community_milestones.storage.keys import PROFILE_SK, SCAN_SHARDS, member_pk, scan_shard, shard_name
from tests.helpers import make_stats

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

NOW = datetime(2025, 8, 18, 12, 0, tzinfo=UTC)
ADA = MemberRef(identifier="188055")
GRACE = MemberRef(identifier="64f1c2aa9b3e4d0012ab34cd")
STREAK = MilestoneReached("streak-3", "streak", "activity", 3, 3)


def profile(table: Table, member: MemberRef) -> dict[str, object]:
    item = table.get_item(Key={"pk": member_pk(member), "sk": PROFILE_SK}, ConsistentRead=True).get("Item")
    assert item is not None, f"{member.key} is not registered"
    return dict(item)


def all_due(members: MemberStore, now: datetime) -> list[DueMember]:
    due: list[DueMember] = []
    for number in range(SCAN_SHARDS):
        page, _ = members.due(shard_name(number), now=now, limit=100)
        due.extend(page)
    return due


def members_in_one_shard(count: int) -> list[MemberRef]:
    """`count` members that hash to the same due-index shard."""
    shard = scan_shard(MemberRef(identifier="1000"))
    candidates = (MemberRef(identifier=str(1000 + offset)) for offset in range(10_000))
    return [member for member in candidates if scan_shard(member) == shard][:count]


def record_of(member: MemberRef, *, reached_at: datetime, trigger: Trigger, correlation_id: str) -> MilestoneRecord:
    return MilestoneRecord(
        member=member,
        milestone=STREAK,
        stats=make_stats({"2025-08-16": 1, "2025-08-17": {"reaction": 2}, "2025-08-18": {"replies": 1}}),
        reached_at=reached_at,
        trigger=trigger,
        correlation_id=correlation_id,
        community_id="community-1",
    )


# ---------------------------------------------------------------------------
# Registering members
# ---------------------------------------------------------------------------


def test_register_records_a_new_member_due_at_once(table: Table) -> None:
    # GIVEN an empty table
    members = MemberStore(table)

    # WHEN a member is registered
    members.register(ADA, now=NOW, event_type="user-joins-server", community_id="community-1")

    # THEN the profile holds the member, its shard and a next scan due now
    item = profile(table, ADA)
    assert item["entity"] == "member"
    assert item["identifier"] == "188055"
    assert item["identifier_type"] == "userId"
    assert item["community_id"] == "community-1"
    assert item["registered_at"] == NOW.isoformat()
    assert item["scan_shard"] == scan_shard(ADA)
    assert item["next_scan_at"] == int(NOW.timestamp())
    assert [due.member for due in all_due(members, NOW)] == [ADA]


def test_register_again_keeps_registration_and_schedule(table: Table) -> None:
    # GIVEN a registered member whose next scan was claimed for later
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server", community_id="community-1")
    (due,) = all_due(members, NOW)
    later = int((NOW + timedelta(hours=24)).timestamp())
    assert members.claim(due, next_scan_at=later, now=NOW)

    # WHEN a second delivery registers the member again, without a community
    members.register(ADA, now=NOW + timedelta(hours=1), event_type="user-visits-server")

    # THEN the registration time, the schedule and the community stand; the last event is updated
    item = profile(table, ADA)
    assert item["registered_at"] == NOW.isoformat()
    assert item["next_scan_at"] == later
    assert item["community_id"] == "community-1"
    assert item["last_event_type"] == "user-visits-server"
    assert item["last_event_at"] == (NOW + timedelta(hours=1)).isoformat()
    assert all_due(members, NOW + timedelta(hours=1)) == []


def test_register_is_idempotent(table: Table) -> None:
    # GIVEN a member registered once
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    first = profile(table, ADA)

    # WHEN the same delivery registers it again
    members.register(ADA, now=NOW, event_type="user-joins-server")

    # THEN one profile exists, unchanged
    assert profile(table, ADA) == first
    assert table.scan()["Count"] == 1


def test_register_an_email_member_under_its_normalised_address(table: Table) -> None:
    # GIVEN a member known only by a mixed-case email address
    members = MemberStore(table)
    member = MemberRef(identifier=" Ada@Example.COM ", identifier_type="email")

    # WHEN it is registered
    members.register(member, now=NOW, event_type="user-joins-server")

    # THEN it is stored and found due under the lower-case address, as an email member
    item = table.get_item(Key={"pk": "MEMBER#email#ada@example.com", "sk": PROFILE_SK})["Item"]
    assert item["identifier_type"] == "email"
    (due,) = all_due(members, NOW)
    assert due.member == MemberRef(identifier="ada@example.com", identifier_type="email")
    assert due.community_id is None


# ---------------------------------------------------------------------------
# Finding due members
# ---------------------------------------------------------------------------


def test_due_finds_members_due_in_their_shard_and_not_future_ones(table: Table) -> None:
    # GIVEN members registered now and one registered an hour ahead
    members = MemberStore(table)
    present = [MemberRef(identifier=str(number)) for number in range(40)]
    for member in present:
        members.register(member, now=NOW, event_type="user-joins-server")
    members.register(GRACE, now=NOW + timedelta(hours=1), event_type="user-joins-server")

    # WHEN each shard is asked for its due members now
    due = all_due(members, NOW)

    # THEN every present member is found once, in its own shard, and the future one is not
    assert sorted(item.member.identifier for item in due) == sorted(member.identifier for member in present)
    for number in range(SCAN_SHARDS):
        page, _ = members.due(shard_name(number), now=NOW, limit=100)
        assert all(scan_shard(item.member) == shard_name(number) for item in page)
    assert GRACE in [item.member for item in all_due(members, NOW + timedelta(hours=1))]


def test_due_pages_through_a_shard(table: Table) -> None:
    # GIVEN five due members in one shard
    members = MemberStore(table)
    crowd = members_in_one_shard(5)
    for member in crowd:
        members.register(member, now=NOW, event_type="user-joins-server")

    # WHEN the shard is read two members at a time
    found: list[MemberRef] = []
    page, start_key = members.due(scan_shard(crowd[0]), now=NOW, limit=2)
    found.extend(item.member for item in page)
    while start_key:
        page, start_key = members.due(scan_shard(crowd[0]), now=NOW, limit=2, start_key=start_key)
        found.extend(item.member for item in page)

    # THEN every member is found exactly once
    assert sorted(member.identifier for member in found) == sorted(member.identifier for member in crowd)


# ---------------------------------------------------------------------------
# Claiming and releasing
# ---------------------------------------------------------------------------


def test_claim_succeeds_once_for_overlapping_scans(table: Table) -> None:
    # GIVEN two scans that both read the member as due, with the same schedule value
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    (seen_by_first,) = all_due(members, NOW)
    (seen_by_second,) = all_due(members, NOW)
    later = int((NOW + timedelta(hours=24)).timestamp())

    # WHEN both claim it
    first = members.claim(seen_by_first, next_scan_at=later, now=NOW)
    second = members.claim(seen_by_second, next_scan_at=later + 1, now=NOW)

    # THEN only the first claim holds, and the member is no longer due
    assert (first, second) == (True, False)
    item = profile(table, ADA)
    assert item["next_scan_at"] == later
    assert item["last_scanned_at"] == NOW.isoformat()
    assert all_due(members, NOW + timedelta(hours=1)) == []


def test_release_makes_the_member_due_again(table: Table) -> None:
    # GIVEN a claimed member
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    (due,) = all_due(members, NOW)
    later = int((NOW + timedelta(hours=24)).timestamp())
    assert members.claim(due, next_scan_at=later, now=NOW)

    # WHEN the claim is released
    members.release(due, claimed_next_scan_at=later)

    # THEN the member is due again at its former time and can be claimed again
    assert profile(table, ADA)["next_scan_at"] == int(NOW.timestamp())
    (again,) = all_due(members, NOW)
    assert again == due
    assert members.claim(again, next_scan_at=later, now=NOW)


def test_release_of_a_stale_claim_leaves_the_newer_schedule(table: Table) -> None:
    # GIVEN a member whose schedule moved on after the claim was made
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    (due,) = all_due(members, NOW)
    later = int((NOW + timedelta(hours=24)).timestamp())
    assert members.claim(due, next_scan_at=later, now=NOW)
    moved = DueMember(member=ADA, next_scan_at=later)
    assert members.claim(moved, next_scan_at=later + 3600, now=NOW + timedelta(hours=24))

    # WHEN the old claim is released
    members.release(due, claimed_next_scan_at=later)

    # THEN the newer schedule stands
    assert profile(table, ADA)["next_scan_at"] == later + 3600


def test_a_member_not_yet_due_cannot_be_claimed(table: Table) -> None:
    # GIVEN a member whose next scan is a day away, seen by a scan reading a stale index
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    later = int((NOW + timedelta(hours=24)).timestamp())
    (due,) = all_due(members, NOW)
    assert members.claim(due, next_scan_at=later, now=NOW)

    # WHEN another scan tries to claim it with the new schedule before it is due
    claimed = members.claim(DueMember(member=ADA, next_scan_at=later), next_scan_at=later + 86_400, now=NOW)

    # THEN the claim fails and the schedule stands
    assert not claimed
    assert profile(table, ADA)["next_scan_at"] == later


def test_claim_of_an_unregistered_member_fails(table: Table) -> None:
    # GIVEN a member that was never registered
    members = MemberStore(table)

    # WHEN a scan claims it
    # THEN the claim fails
    assert not members.claim(DueMember(member=ADA, next_scan_at=int(NOW.timestamp())), next_scan_at=1, now=NOW)


@pytest.mark.parametrize("operation", ["claim", "release"])
def test_claim_and_release_let_other_dynamodb_errors_through(table: Table, operation: str) -> None:
    # GIVEN a table that throttles the next write
    members = MemberStore(table)
    due = DueMember(member=ADA, next_scan_at=int(NOW.timestamp()))
    stubber = Stubber(table.meta.client)
    stubber.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")

    # WHEN a scan claims or releases a member
    # THEN the error reaches the caller instead of passing for a lost race
    with stubber, pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        if operation == "claim":
            members.claim(due, next_scan_at=1, now=NOW)
        else:
            members.release(due, claimed_next_scan_at=1)


# ---------------------------------------------------------------------------
# Milestone records
# ---------------------------------------------------------------------------


def test_record_writes_a_milestone_once(table: Table) -> None:
    # GIVEN a milestone reached by a member
    milestones = MilestoneStore(table)
    first = record_of(ADA, reached_at=NOW, trigger="webhook", correlation_id="delivery-1")

    # WHEN it is recorded
    written = milestones.record(first)

    # THEN the record holds the milestone, the window and the platform's counts
    assert written
    (item,) = milestones.records(ADA)
    assert item["pk"] == member_pk(ADA)
    assert item["sk"] == "MILESTONE#streak-3"
    assert item["entity"] == "milestone"
    assert item["member_key"] == "userId#188055"
    assert item["milestone_id"] == "streak-3"
    assert (item["kind"], item["metric"], item["value"], item["threshold"]) == ("streak", "activity", 3, 3)
    assert item["reached_at"] == NOW.isoformat()
    assert item["trigger"] == "webhook"
    assert item["correlation_id"] == "delivery-1"
    assert item["community_id"] == "community-1"
    assert item["window"] == {"start_date": "2025-08-16", "end_date": "2025-08-18"}
    assert item["totals"] == {"messages": 1, "replies": 1, "reactions": 2, "socials": 0}


def test_a_second_record_is_refused_and_the_first_stands(table: Table) -> None:
    # GIVEN a recorded milestone
    milestones = MilestoneStore(table)
    assert milestones.record(record_of(ADA, reached_at=NOW, trigger="webhook", correlation_id="delivery-1"))

    # WHEN a later scan records the same milestone again
    again = milestones.record(
        record_of(ADA, reached_at=NOW + timedelta(days=1), trigger="scan", correlation_id="scan-2")
    )

    # THEN nothing is written and the first record keeps its time and trigger
    assert again is False
    (item,) = milestones.records(ADA)
    assert item["reached_at"] == NOW.isoformat()
    assert item["trigger"] == "webhook"
    assert item["correlation_id"] == "delivery-1"


def test_record_lets_other_dynamodb_errors_through(table: Table) -> None:
    # GIVEN a table that throttles the next write
    stubber = Stubber(table.meta.client)
    stubber.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")

    # WHEN a milestone is recorded
    # THEN the error reaches the caller instead of passing for an existing record
    with stubber, pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        MilestoneStore(table).record(record_of(ADA, reached_at=NOW, trigger="webhook", correlation_id="c"))


@pytest.mark.parametrize("identifier", ["", "   "])
def test_a_member_needs_a_non_blank_identifier(identifier: str) -> None:
    # GIVEN an empty or blank identifier
    # WHEN a member reference is made of it
    # THEN it is refused before it can become a key
    with pytest.raises(ValidationError):
        MemberRef(identifier=identifier)


def test_reached_ids_lists_only_the_members_milestones(table: Table) -> None:
    # GIVEN two milestones of one member, one of another, and the member's profile
    milestones = MilestoneStore(table)
    MemberStore(table).register(ADA, now=NOW, event_type="user-joins-server")
    assert milestones.record(record_of(ADA, reached_at=NOW, trigger="webhook", correlation_id="c"))
    other = record_of(ADA, reached_at=NOW, trigger="webhook", correlation_id="c")
    assert milestones.record(
        MilestoneRecord(
            member=ADA,
            milestone=MilestoneReached("first-steps", "window_total", "activity", 4, 1),
            stats=other.stats,
            reached_at=NOW,
            trigger="webhook",
            correlation_id="c",
        )
    )
    assert milestones.record(record_of(GRACE, reached_at=NOW, trigger="scan", correlation_id="c"))

    # WHEN the reached milestones are listed
    # THEN each member sees only its own, and the profile is not one of them
    assert milestones.reached_ids(ADA) == {"streak-3", "first-steps"}
    assert milestones.reached_ids(GRACE) == {"streak-3"}
    assert milestones.reached_ids(MemberRef(identifier="nobody")) == set()


def test_reached_ids_reads_every_page(table: Table) -> None:
    # GIVEN more milestone records than one query page holds (1 MB of items)
    milestones = MilestoneStore(table)
    stats = make_stats({"2025-08-18": 1})
    ids = {f"milestone-{number:03d}" for number in range(60)}
    padding = "x" * 20_000
    for milestone_id in ids:
        record = MilestoneRecord(
            member=ADA,
            milestone=MilestoneReached(milestone_id, "window_total", "activity", 1, 1),
            stats=stats,
            reached_at=NOW,
            trigger="scan",
            correlation_id=padding,
        )
        table.put_item(Item=record.to_item())
    first_page = table.query(KeyConditionExpression=Key("pk").eq(member_pk(ADA)), ProjectionExpression="sk")
    assert "LastEvaluatedKey" in first_page

    # WHEN the reached milestones are listed
    # THEN all of them are found
    assert milestones.reached_ids(ADA) == ids


def test_a_retired_member_leaves_the_scans_until_it_joins_again(table: Table) -> None:
    # GIVEN a registered member the platform turned out not to know
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    members.retire(ADA, now=NOW, reason="the platform does not know member userId#188055")

    # WHEN scans look for due members, THEN it is not among them, and its profile says why
    assert all_due(members, NOW + timedelta(days=30)) == []
    assert str(profile(table, ADA)["retired_reason"]).startswith("the platform does not know")

    # WHEN a new delivery registers it again, THEN it is due once more and no longer retired
    members.register(ADA, now=NOW + timedelta(days=1), event_type="user-joins-server")
    assert [due.member for due in all_due(members, NOW + timedelta(days=1))] == [ADA]
    assert "retired_at" not in profile(table, ADA)


def test_retiring_an_unregistered_member_writes_nothing(table: Table) -> None:
    # GIVEN an empty table
    # WHEN a member that was never registered is retired, THEN no profile appears
    MemberStore(table).retire(ADA, now=NOW, reason="unknown")
    assert table.scan()["Items"] == []


def test_a_claim_retried_after_its_answer_was_lost_is_still_its_own(table: Table) -> None:
    # GIVEN a claim that went through although its answer never reached the scan
    members = MemberStore(table)
    members.register(ADA, now=NOW, event_type="user-joins-server")
    (due,) = all_due(members, NOW)
    later = int((NOW + timedelta(hours=24)).timestamp())
    assert members.claim(due, next_scan_at=later, now=NOW, claimant="scan-run-1")

    # WHEN the same run sends the same claim again, as botocore's retry does, and another run tries too
    retried = members.claim(due, next_scan_at=later, now=NOW, claimant="scan-run-1")
    other = members.claim(due, next_scan_at=later, now=NOW, claimant="scan-run-2")

    # THEN the retry is recognised as the run's own claim, and the other run's is refused
    assert retried
    assert not other
