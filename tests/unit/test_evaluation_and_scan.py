"""Evaluating a member and scanning for due members, on the template's own table and queues."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from community_milestones.errors import OutOfTime, PlatformUnavailable
from community_milestones.evaluation import MemberEvaluator
from community_milestones.members import EvaluationRequest, MemberRef, Trigger
from community_milestones.queueing import REASON_LIMIT, DeadLetters, WorkQueue, sqs_text
from community_milestones.retries import RetryPolicy
from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules import load_rules
from community_milestones.scanning import MemberScan, ScanSummary
from community_milestones.storage import DueMember, MemberStore, MilestoneStore
from community_milestones.storage.keys import SCAN_SHARDS, shard_name
from tests.helpers import Queues, make_stats, receive_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

NOW = datetime(2025, 8, 18, 12, 0, tzinfo=UTC)
SCAN_AT = NOW + timedelta(minutes=1)
PERIOD = timedelta(hours=24)
ADA = MemberRef(identifier="188055")
PLENTY_MS = 600_000
MARGIN_MS = 10_000
WEEK_ACTIVE = ["first-steps", "conversation-starter", "streak-3", "streak-7"]


class FakeStats:
    """A stats source serving fixed stats per member, counting its calls."""

    def __init__(self, stats: dict[str, ActivityStats]) -> None:
        self.stats = stats
        self.calls: list[MemberRef] = []

    def fetch_activity_stats(self, member: MemberRef) -> ActivityStats:
        self.calls.append(member)
        return self.stats[member.key]


class FailingStats:
    """A stats source whose platform is unavailable."""

    def fetch_activity_stats(self, member: MemberRef) -> ActivityStats:
        raise PlatformUnavailable("the platform answered 503", status_code=503)


class StaleMilestoneStore(MilestoneStore):
    """Reads no recorded milestones, as a reader racing a concurrent writer would."""

    def reached_ids(self, member: MemberRef) -> set[str]:
        return set()


class InterleavedMembers(MemberStore):
    """A member store that runs `interrupt` right after its first non-empty page of due members is read."""

    def __init__(self, table: Table, interrupt: Callable[[], object]) -> None:
        super().__init__(table)
        self._interrupt = interrupt
        self._interrupted = False

    def due(
        self, shard: str, *, now: datetime, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[DueMember], dict[str, Any] | None]:
        page = super().due(shard, now=now, limit=limit, start_key=start_key)
        if page[0] and not self._interrupted:
            self._interrupted = True
            self._interrupt()
        return page


class RefusingQueue(WorkQueue):
    """A work queue that refuses the requests of some members and sends the rest."""

    def __init__(self, queues: Queues, refuse: set[str]) -> None:
        super().__init__(queues.sqs, queues.work_url)
        self._refuse = refuse

    def send_batch(self, requests: Sequence[EvaluationRequest]) -> list[EvaluationRequest]:
        refused = [request for request in requests if request.member.identifier in self._refuse]
        accepted = [request for request in requests if request.member.identifier not in self._refuse]
        return refused + super().send_batch(accepted)


def week_of_activity(per_day: int = 2) -> ActivityStats:
    return make_stats({f"2025-08-{day:02d}": per_day for day in range(12, 19)})


def request_for(
    member: MemberRef, trigger: Trigger = "webhook", correlation_id: str = "delivery-1"
) -> EvaluationRequest:
    return EvaluationRequest(
        member=member,
        trigger=trigger,
        requested_at=NOW,
        correlation_id=correlation_id,
        event_type="user-joins-server" if trigger == "webhook" else None,
        community_id="community-1",
    )


def evaluator(table: Table, stats: FakeStats, *, store: MilestoneStore | None = None) -> MemberEvaluator:
    return MemberEvaluator(
        stats=stats, rules=load_rules(), milestones=store or MilestoneStore(table), clock=lambda: NOW
    )


def register(table: Table, count: int, *, now: datetime = NOW) -> list[MemberRef]:
    members = MemberStore(table)
    registered = [MemberRef(identifier=str(200_000 + number)) for number in range(count)]
    for member in registered:
        members.register(member, now=now, event_type="user-joins-server", community_id="community-1")
    return registered


def scan(table: Table, queue: WorkQueue, *, members: MemberStore | None = None, page_size: int = 100) -> MemberScan:
    return MemberScan(
        members=members or MemberStore(table), queue=queue, period=PERIOD, page_size=page_size, clock=lambda: SCAN_AT
    )


def run(
    member_scan: MemberScan, correlation_id: str = "scan-1", time_left_ms: Callable[[], int] | None = None
) -> ScanSummary:
    return member_scan.run(
        correlation_id=correlation_id, time_left_ms=time_left_ms or (lambda: PLENTY_MS), safety_margin_ms=MARGIN_MS
    )


def enqueued_requests(queues: Queues) -> list[EvaluationRequest]:
    return [
        EvaluationRequest.model_validate_json(message["Body"]) for message in receive_all(queues.sqs, queues.work_url)
    ]


def still_due(table: Table) -> list[MemberRef]:
    members = MemberStore(table)
    due: list[MemberRef] = []
    for number in range(SCAN_SHARDS):
        page, _ = members.due(shard_name(number), now=SCAN_AT, limit=1000)
        due.extend(item.member for item in page)
    return due


def allow_pages(count: int) -> Callable[[], int]:
    """A remaining-time reading with plenty left for `count` readings, then below any margin."""
    readings = iter([PLENTY_MS] * count)
    return lambda: next(readings, 0)


# ---------------------------------------------------------------------------
# Evaluating a member
# ---------------------------------------------------------------------------


def test_evaluation_writes_each_newly_reached_milestone(table: Table) -> None:
    # GIVEN a member active every day of a week
    stats = FakeStats({ADA.key: week_of_activity()})

    # WHEN a webhook delivery's evaluation runs
    outcome = evaluator(table, stats).evaluate(request_for(ADA))

    # THEN every reached milestone is written once, with the request's trigger and correlation id
    assert outcome.member_key == ADA.key
    assert outcome.reached == WEEK_ACTIVE
    assert outcome.written == WEEK_ACTIVE
    assert outcome.already_recorded == []
    records = {item["milestone_id"]: item for item in MilestoneStore(table).records(ADA)}
    assert sorted(records) == sorted(WEEK_ACTIVE)
    for item in records.values():
        assert item["trigger"] == "webhook"
        assert item["correlation_id"] == "delivery-1"
        assert item["reached_at"] == NOW.isoformat()
        assert item["community_id"] == "community-1"
    assert (records["streak-7"]["value"], records["streak-7"]["threshold"]) == (7, 7)
    assert stats.calls == [ADA]


def test_a_second_evaluation_writes_nothing(table: Table) -> None:
    # GIVEN a member whose milestones a webhook delivery recorded
    stats = FakeStats({ADA.key: week_of_activity()})
    evaluator(table, stats).evaluate(request_for(ADA))
    before = MilestoneStore(table).records(ADA)

    # WHEN a scan evaluates the member again
    outcome = evaluator(table, stats).evaluate(request_for(ADA, trigger="scan", correlation_id="scan-7"))

    # THEN nothing is written and the first records stand, trigger included
    assert outcome.written == []
    assert outcome.already_recorded == WEEK_ACTIVE
    assert MilestoneStore(table).records(ADA) == before


def test_a_later_evaluation_writes_only_what_is_new(table: Table) -> None:
    # GIVEN a member who reached a three-day streak
    stats = FakeStats({ADA.key: week_of_activity(per_day=1)})
    first = evaluator(table, stats).evaluate(request_for(ADA))
    assert first.written == ["first-steps", "streak-3", "streak-7"]

    # WHEN more messages arrive and a scan evaluates the member
    stats.stats[ADA.key] = week_of_activity(per_day=2)
    later = evaluator(table, stats).evaluate(request_for(ADA, trigger="scan", correlation_id="scan-8"))

    # THEN only the newly reached milestone is written, by the scan
    assert later.written == ["conversation-starter"]
    assert later.already_recorded == ["first-steps", "streak-3", "streak-7"]
    records = {item["milestone_id"]: item["trigger"] for item in MilestoneStore(table).records(ADA)}
    assert records == {
        "first-steps": "webhook",
        "streak-3": "webhook",
        "streak-7": "webhook",
        "conversation-starter": "scan",
    }


def test_a_concurrent_write_counts_as_already_recorded(table: Table) -> None:
    # GIVEN milestones written by another worker after this one read the member's records
    stats = FakeStats({ADA.key: week_of_activity()})
    evaluator(table, stats).evaluate(request_for(ADA, correlation_id="other-worker"))

    # WHEN this worker, reading no records, evaluates the member
    outcome = evaluator(table, stats, store=StaleMilestoneStore(table)).evaluate(request_for(ADA))

    # THEN the conditional write refuses every record and the other worker's records stand
    assert outcome.written == []
    assert outcome.already_recorded == WEEK_ACTIVE
    assert {item["correlation_id"] for item in MilestoneStore(table).records(ADA)} == {"other-worker"}


def test_no_activity_writes_nothing(table: Table) -> None:
    # GIVEN a member without activity in the window
    stats = FakeStats({ADA.key: make_stats({}, start="2025-07-20", end="2025-08-18")})

    # WHEN the member is evaluated
    outcome = evaluator(table, stats).evaluate(request_for(ADA))

    # THEN nothing is reached or written
    assert (outcome.reached, outcome.written, outcome.already_recorded) == ([], [], [])
    assert MilestoneStore(table).records(ADA) == []


def test_platform_errors_reach_the_caller_and_write_nothing(table: Table) -> None:
    # GIVEN a platform that is unavailable
    member_evaluator = MemberEvaluator(stats=FailingStats(), rules=load_rules(), milestones=MilestoneStore(table))

    # WHEN a member is evaluated
    # THEN the retryable error reaches the caller and nothing is written
    with pytest.raises(PlatformUnavailable) as raised:
        member_evaluator.evaluate(request_for(ADA))
    assert raised.value.retryable
    assert MilestoneStore(table).records(ADA) == []


# ---------------------------------------------------------------------------
# Scanning for due members
# ---------------------------------------------------------------------------


def test_scan_enqueues_each_due_member_once(table: Table, queues: Queues) -> None:
    # GIVEN 25 members due now and one due only in two hours
    registered = register(table, 25)
    MemberStore(table).register(ADA, now=NOW + timedelta(hours=2), event_type="user-joins-server")

    # WHEN a scan runs, three members a page
    summary = run(scan(table, WorkQueue(queues.sqs, queues.work_url), page_size=3), correlation_id="scan-run-1")

    # THEN each due member is on the queue once, as a scan request, and the future one is not
    assert summary == ScanSummary(due=25, enqueued=25, claimed_elsewhere=0, released=0, complete=True)
    requests = enqueued_requests(queues)
    assert sorted(request.member.identifier for request in requests) == sorted(m.identifier for m in registered)
    for request in requests:
        assert request.trigger == "scan"
        assert request.correlation_id == "scan-run-1"
        assert request.requested_at == SCAN_AT
        assert request.community_id == "community-1"
    assert still_due(table) == []


def test_a_repeated_scan_in_the_same_period_enqueues_nothing(table: Table, queues: Queues) -> None:
    # GIVEN a scan that enqueued every due member
    register(table, 12)
    queue = WorkQueue(queues.sqs, queues.work_url)
    run(scan(table, queue))

    # WHEN another scan runs in the same period
    summary = run(scan(table, queue), correlation_id="scan-2")

    # THEN it finds no member due
    assert summary == ScanSummary(complete=True)
    assert len(enqueued_requests(queues)) == 12


def test_overlapping_scans_enqueue_each_member_once_in_total(table: Table, queues: Queues) -> None:
    # GIVEN 30 due members, and a second scan that runs in full while the first holds its first page
    registered = register(table, 30)
    queue = WorkQueue(queues.sqs, queues.work_url)
    summaries: list[ScanSummary] = []
    second = scan(table, queue)
    first = scan(table, queue, members=InterleavedMembers(table, lambda: summaries.append(run(second, "scan-b"))))

    # WHEN the first scan runs around the second
    summaries.append(run(first, "scan-a"))

    # THEN every member is enqueued exactly once across both scans
    second_summary, first_summary = summaries
    assert second_summary.enqueued == 30
    assert first_summary.enqueued == 0
    assert first_summary.claimed_elsewhere == first_summary.due > 0
    requests = enqueued_requests(queues)
    assert sorted(request.member.identifier for request in requests) == sorted(m.identifier for m in registered)


def test_a_scan_near_its_deadline_stops_and_the_next_run_picks_up_the_rest(table: Table, queues: Queues) -> None:
    # GIVEN 40 due members spread over the shards, and time for five pages only
    registered = register(table, 40)
    queue = WorkQueue(queues.sqs, queues.work_url)

    # WHEN a scan runs out of time, and the next run has plenty
    cut_short = run(scan(table, queue), time_left_ms=allow_pages(5))
    left_over = len(still_due(table))
    next_run = run(scan(table, queue), correlation_id="scan-2")

    # THEN the first stops incomplete, the second completes, and each member is enqueued once
    assert not cut_short.complete
    assert 0 < cut_short.enqueued < 40
    assert left_over == 40 - cut_short.enqueued
    assert next_run.complete
    assert next_run.enqueued == left_over
    requests = enqueued_requests(queues)
    assert sorted(request.member.identifier for request in requests) == sorted(m.identifier for m in registered)


def test_a_scan_without_time_left_claims_nothing(table: Table, queues: Queues) -> None:
    # GIVEN due members and a scan started with less time than its safety margin
    register(table, 5)

    # WHEN the scan runs
    summary = run(scan(table, WorkQueue(queues.sqs, queues.work_url)), time_left_ms=lambda: MARGIN_MS - 1)

    # THEN it stops at once, incomplete, and every member stays due
    assert summary == ScanSummary(complete=False)
    assert len(still_due(table)) == 5
    assert enqueued_requests(queues) == []


def test_a_refused_batch_entry_releases_its_claim(table: Table, queues: Queues) -> None:
    # GIVEN one due member and a queue that refuses the entry (scripted exactly with Stubber)
    register(table, 1)
    sqs = boto3.client("sqs", region_name="us-east-1")
    stubber = Stubber(sqs)
    stubber.add_response(
        "send_message_batch",
        {"Successful": [], "Failed": [{"Id": "0", "SenderFault": False, "Code": "InternalError", "Message": "retry"}]},
        {"QueueUrl": queues.work_url, "Entries": ANY},
    )

    # WHEN a scan runs
    with stubber:
        summary = run(scan(table, WorkQueue(sqs, queues.work_url)))

    # THEN the claim is released and the next scan enqueues the member
    stubber.assert_no_pending_responses()
    assert summary == ScanSummary(due=1, enqueued=0, claimed_elsewhere=0, released=1, complete=True)
    assert still_due(table) == [MemberRef(identifier="200000")]
    assert run(scan(table, WorkQueue(queues.sqs, queues.work_url))).enqueued == 1
    assert [request.member.identifier for request in enqueued_requests(queues)] == ["200000"]


def test_a_failed_batch_call_leaves_its_members_due(table: Table, queues: Queues) -> None:
    # GIVEN one due member and a queue whose batch call fails outright (after botocore's own retries)
    register(table, 1)
    sqs = boto3.client("sqs", region_name="us-east-1")
    stubber = Stubber(sqs)
    stubber.add_client_error("send_message_batch", service_error_code="ServiceUnavailable", http_status_code=503)

    # WHEN a scan runs, whether or not it reports the failure
    with stubber, contextlib.suppress(ClientError):
        run(scan(table, WorkQueue(sqs, queues.work_url)))

    # THEN the member, whose evaluation never reached the queue, is still due for the next run
    assert still_due(table) == [MemberRef(identifier="200000")]


def test_refused_requests_release_only_their_own_claims(table: Table, queues: Queues) -> None:
    # GIVEN twelve due members and a queue that refuses two of them
    registered = register(table, 12)
    refused = {registered[3].identifier, registered[8].identifier}

    # WHEN a scan runs
    summary = run(scan(table, RefusingQueue(queues, refused)))

    # THEN ten are enqueued and only the two refused stay due
    assert (summary.due, summary.enqueued, summary.released) == (12, 10, 2)
    assert {member.identifier for member in still_due(table)} == refused
    assert len(enqueued_requests(queues)) == 10


# ---------------------------------------------------------------------------
# The queues
# ---------------------------------------------------------------------------


def test_send_batch_splits_requests_into_tens(queues: Queues) -> None:
    # GIVEN 23 requests and SQS scripted for three batches, the second refusing its third entry
    requests = [request_for(MemberRef(identifier=str(number)), trigger="scan") for number in range(23)]
    sqs = boto3.client("sqs", region_name="us-east-1")
    stubber = Stubber(sqs)
    for start, failed in ((0, []), (10, ["2"]), (20, [])):
        chunk = requests[start : start + 10]
        entries = [{"Id": str(index), "MessageBody": request.model_dump_json()} for index, request in enumerate(chunk)]
        stubber.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": entry["Id"], "MessageId": f"m-{start}-{entry['Id']}", "MD5OfMessageBody": "0" * 32}
                    for entry in entries
                    if entry["Id"] not in failed
                ],
                "Failed": [
                    {"Id": entry_id, "SenderFault": True, "Code": "InvalidParameterValue"} for entry_id in failed
                ],
            },
            {"QueueUrl": queues.work_url, "Entries": entries},
        )

    # WHEN they are sent
    with stubber:
        refused = WorkQueue(sqs, queues.work_url).send_batch(requests)

    # THEN three batches of 10, 10 and 3 went out, and the refused entry maps back to its request
    stubber.assert_no_pending_responses()
    assert refused == [requests[12]]


def test_send_batch_lands_every_request_on_the_queue(queues: Queues) -> None:
    # GIVEN 23 requests
    requests = [request_for(MemberRef(identifier=str(number)), trigger="scan") for number in range(23)]

    # WHEN they are sent to the template's work queue
    refused = WorkQueue(queues.sqs, queues.work_url).send_batch(requests)

    # THEN none is refused and each is on the queue once
    assert refused == []
    assert sorted(enqueued_requests(queues), key=lambda r: int(r.member.identifier)) == requests


def test_send_puts_one_request_on_the_queue(queues: Queues) -> None:
    # GIVEN a webhook's request
    request = request_for(ADA)

    # WHEN it is sent
    message_id = WorkQueue(queues.sqs, queues.work_url).send(request)

    # THEN it is on the queue as sent
    (message,) = receive_all(queues.sqs, queues.work_url)
    assert message["MessageId"] == message_id
    assert EvaluationRequest.model_validate_json(message["Body"]) == request


def test_park_puts_the_reason_beside_the_original_body(queues: Queues) -> None:
    # GIVEN work that cannot succeed
    body = request_for(ADA).model_dump_json()

    # WHEN it is parked in the dead-letter queue
    DeadLetters(queues.sqs, queues.dead_letter_url).park(
        body,
        reason="the platform does not know the member",
        kind="MemberNotFound",
        source_message_id="m-1",
        receive_count=3,
    )

    # THEN the body is unchanged and the reason, kind, source and receive count are attributes
    (message,) = receive_all(queues.sqs, queues.dead_letter_url)
    assert message["Body"] == body
    attributes = {
        name: (value["DataType"], value["StringValue"]) for name, value in message["MessageAttributes"].items()
    }
    assert attributes == {
        "failure_reason": ("String", "the platform does not know the member"),
        "failure_kind": ("String", "MemberNotFound"),
        "source_message_id": ("String", "m-1"),
        "receive_count": ("Number", "3"),
    }
    assert receive_all(queues.sqs, queues.work_url) == []


@pytest.mark.parametrize(
    ("reason", "stored"),
    [
        pytest.param("x" * (REASON_LIMIT + 500), "x" * REASON_LIMIT, id="long-reason-truncated"),
        pytest.param("", "unknown", id="empty-reason"),
    ],
)
def test_park_keeps_the_reason_within_bounds(queues: Queues, reason: str, stored: str) -> None:
    # GIVEN a reason too long or empty
    # WHEN work is parked with it
    DeadLetters(queues.sqs, queues.dead_letter_url).park(
        json.dumps({"member": "x"}), reason=reason, kind="ContractViolation", source_message_id="m-2", receive_count=1
    )

    # THEN the stored reason is bounded and never empty
    (message,) = receive_all(queues.sqs, queues.dead_letter_url)
    assert message["MessageAttributes"]["failure_reason"]["StringValue"] == stored


@pytest.mark.parametrize(
    ("failure", "receive_count", "expected"),
    [
        pytest.param(PlatformUnavailable("503"), 1, 30, id="first"),
        pytest.param(PlatformUnavailable("503"), 2, 60, id="second"),
        pytest.param(PlatformUnavailable("503"), 9, 900, id="capped"),
        pytest.param(PlatformUnavailable("429", retry_after=599.2), 1, 600, id="retry-after-longer-than-backoff"),
        pytest.param(PlatformUnavailable("429", retry_after=1), 3, 120, id="retry-after-shorter-than-backoff"),
        pytest.param(PlatformUnavailable("429", retry_after=10**9), 1, 21_600, id="retry-after-capped"),
        pytest.param(OutOfTime("no time"), 4, 0, id="out-of-time-at-once"),
    ],
)
def test_retry_policy_backs_off_unless_the_platform_says_when(
    failure: Exception, receive_count: int, expected: int
) -> None:
    # GIVEN the default policy
    policy = RetryPolicy()

    # WHEN a failure on the nth receive asks for a delay, THEN it is the Retry-After or the doubled backoff
    assert policy.delay(failure, receive_count) == expected


def test_a_reason_with_characters_sqs_refuses_is_cleaned() -> None:
    # GIVEN a platform error text holding a NUL, an escape and a lone surrogate
    reason = "bad\x00gateway\x1b[0m \udc00 ok"

    # WHEN it becomes a dead-letter attribute, THEN only characters SQS accepts remain
    assert sqs_text(reason) == "bad?gateway?[0m ? ok"


def test_a_deadline_in_the_middle_of_a_page_leaves_no_member_claimed_but_unsent(table: Table, queues: Queues) -> None:
    # GIVEN one shard's worth of due members read as a single page, and time for a few claims only
    register(table, 40)
    queue = WorkQueue(queues.sqs, queues.work_url)

    # WHEN the deadline arrives while the page is being claimed
    summary = run(scan(table, queue, page_size=1000), time_left_ms=allow_pages(8))

    # THEN the run stops early, and every member it claimed is on the queue; the rest stay due
    assert not summary.complete
    assert summary.enqueued == len(enqueued_requests(queues))
    assert len(still_due(table)) == 40 - summary.enqueued
