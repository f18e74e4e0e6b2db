"""The three entry points called directly with the sample events of `events/`, against moto in process."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from community_milestones.clock import utc_now
from community_milestones.errors import (
    ConfigurationError,
    MemberNotFound,
    PlatformAuthError,
    PlatformUnavailable,
    RulesError,
)
from community_milestones.evaluation import MemberEvaluator
from community_milestones.members import EvaluationRequest, MemberRef
from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules import load_rules
from community_milestones.secrets import SecretValue
from community_milestones.storage import MemberStore, MilestoneStore
from local_stack.functions import LocalContext, load_function
from local_stack.stack import sqs_record
from tests.conftest import fresh_service
from tests.helpers import EVENT_KEY, Queues, make_stats

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def messages(queues: Queues, url: str) -> list[Any]:
    return queues.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    )


# -- webhook ---------------------------------------------------------------------------------


def call_webhook(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = module.handler(event, LocalContext(function_name="webhook"))
    return int(response["statusCode"]), json.loads(response["body"])


def test_webhook_registers_the_member_and_enqueues_an_evaluation(
    webhook: ModuleType, table: Table, queues: Queues
) -> None:
    # GIVEN the sample "user joins server" delivery
    event = sample("webhook-user-joins-server.json")

    # WHEN the webhook handles it
    status, body = call_webhook(webhook, event)

    # THEN it answers 202, the member is registered and one evaluation waits on the queue
    assert status == 202
    assert body["member"] == "userId#188055"
    profile = table.get_item(Key={"pk": "MEMBER#userId#188055", "sk": "PROFILE"})["Item"]
    assert profile["community_id"] == "example-community"
    assert profile["last_event_type"] == "user-joins-server"
    queued = messages(queues, queues.work_url)
    assert len(queued) == 1
    request = EvaluationRequest.model_validate_json(queued[0]["Body"])
    assert request.member == MemberRef(identifier="188055")
    assert request.trigger == "webhook"
    assert request.correlation_id == event["requestContext"]["requestId"]
    assert request.community_id == "example-community"


def test_webhook_uses_the_webhook_id_as_correlation_id(webhook: ModuleType, queues: Queues) -> None:
    # GIVEN a delivery that carries a webhook-id header
    event = sample("webhook-user-joins-server.json")
    event["headers"]["webhook-id"] = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"

    # WHEN the webhook handles it
    status, _ = call_webhook(webhook, event)

    # THEN the queued work carries that id
    assert status == 202
    request = EvaluationRequest.model_validate_json(messages(queues, queues.work_url)[0]["Body"])
    assert request.correlation_id == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def test_webhook_accepts_a_base64_body(webhook: ModuleType) -> None:
    # GIVEN a delivery whose body API Gateway passed base64-encoded
    event = sample("webhook-user-joins-server.json")
    event["body"] = base64.b64encode(b'{"user": {"id": "5f8d0d55b54764421b7156c3"}}').decode()
    event["isBase64Encoded"] = True

    # WHEN the webhook handles it
    status, body = call_webhook(webhook, event)

    # THEN the opaque user id is kept as it is
    assert status == 202
    assert body["member"] == "userId#5f8d0d55b54764421b7156c3"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"headers": {"content-type": "application/json"}}, 401, "missing"),
        ({"headers": {"x-api-key": "not-the-key"}}, 401, "does not match"),
        ({"headers": {"x-api-key": EVENT_KEY[:-1]}}, 401, "does not match"),
        ({"body": '{"communityId": "c1"}'}, 400, "no user identifier"),
        ({"body": "{not json"}, 400, "not valid JSON"),
        ({"body": "[1, 2]"}, 400, "not a JSON object"),
        ({"body": ""}, 400, "empty"),
        ({"body": '{"userId": "   "}'}, 400, "no user identifier"),
        ({"body": "!!!", "isBase64Encoded": True}, 400, "base64"),
        ({"body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True}, 400, "not valid JSON"),
    ],
)
def test_webhook_refuses_bad_deliveries_and_leaves_no_trace(
    webhook: ModuleType, table: Table, queues: Queues, change: dict[str, Any], status: int, message: str
) -> None:
    # GIVEN a delivery with a bad key or a bad body
    event = sample("webhook-user-joins-server.json")
    for name, value in change.items():
        event[name] = value

    # WHEN the webhook handles it
    answered, body = call_webhook(webhook, event)

    # THEN it answers the 4xx with a reason, and nothing is registered or enqueued
    assert answered == status
    assert message in body["message"]
    assert table.scan()["Items"] == []
    assert messages(queues, queues.work_url) == []


def test_webhook_answers_404_for_an_unknown_route(webhook: ModuleType) -> None:
    # GIVEN a delivery to a route the API does not have
    event = sample("webhook-user-joins-server.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/webhooks/unknown"

    # WHEN the webhook handles it
    status, _ = call_webhook(webhook, event)

    # THEN it is not found
    assert status == 404


def test_webhook_without_its_secret_answers_503_and_enqueues_nothing(
    monkeypatch: pytest.MonkeyPatch, table: Table, queues: Queues
) -> None:
    # GIVEN a webhook whose secret does not exist
    fresh_service(monkeypatch, "webhook")
    monkeypatch.setenv("TABLE_NAME", table.name)
    monkeypatch.setenv("QUEUE_URL", queues.work_url)
    monkeypatch.setenv("WEBHOOK_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing")
    module = load_function("webhook")

    # WHEN a delivery arrives
    status, body = call_webhook(module, sample("webhook-user-joins-server.json"))

    # THEN the platform is told to retry later, without the detail, and nothing is written
    assert status == 503
    assert "secret" not in body["message"]
    assert messages(queues, queues.work_url) == []


def test_webhook_never_logs_the_key(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, webhook: ModuleType
) -> None:
    # GIVEN an accepted and a refused delivery
    refused = sample("webhook-user-joins-server.json")
    refused["headers"]["x-api-key"] = "wrong-key-wrong-key"

    # WHEN the webhook handles both
    call_webhook(webhook, sample("webhook-user-joins-server.json"))
    call_webhook(webhook, refused)

    # THEN its logs and metrics name the outcome but neither key
    records = [json.dumps(record.__dict__, default=str) for record in caplog.records]
    output = "\n".join([*records, capsys.readouterr().out])
    assert "delivery accepted" in output
    assert "delivery refused" in output
    assert EVENT_KEY not in output
    assert "wrong-key-wrong-key" not in output


def test_webhook_names_a_missing_setting_at_start_up(monkeypatch: pytest.MonkeyPatch, aws: None) -> None:
    # GIVEN an environment without QUEUE_URL
    fresh_service(monkeypatch, "webhook")
    monkeypatch.setenv("TABLE_NAME", "table")
    monkeypatch.setenv("WEBHOOK_KEY_SECRET_ARN", "arn")
    monkeypatch.delenv("QUEUE_URL", raising=False)

    # WHEN the function starts, THEN a configuration error names the variable
    with pytest.raises(ConfigurationError, match="QUEUE_URL"):
        load_function("webhook")


# -- worker ----------------------------------------------------------------------------------


class FakeStats:
    """A stats source with scripted answers per identifier."""

    def __init__(self, answers: dict[str, ActivityStats | Exception]) -> None:
        self.answers = answers
        self.calls: list[MemberRef] = []

    def fetch_activity_stats(self, member: MemberRef) -> ActivityStats:
        self.calls.append(member)
        answer = self.answers[member.identifier]
        if isinstance(answer, Exception):
            raise answer
        return answer


BUSY_DAYS = {f"2026-11-{day:02d}": {"messages": 3, "reaction": 1} for day in range(1, 11)}
BUSY = make_stats(BUSY_DAYS, user_id="188055")
BUSY_BY_EMAIL = make_stats(BUSY_DAYS, user_id="5f8d0d55b54764421b7156c3")


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, table: Table, queues: Queues) -> ModuleType:
    secret = boto3.client("secretsmanager").create_secret(Name="api-token", SecretString="integration-key")
    fresh_service(monkeypatch, "worker")
    monkeypatch.setenv("TABLE_NAME", table.name)
    monkeypatch.setenv("API_TOKEN_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queues.dead_letter_url)
    monkeypatch.setenv("QUEUE_URL", queues.work_url)
    monkeypatch.setenv("PLATFORM_BASE_URL", "http://127.0.0.1:9/apis/v1")
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "5")
    return load_function("worker")


def use_stats(module: ModuleType, table: Table, stats: FakeStats) -> None:
    setattr(module, "evaluator", MemberEvaluator(stats=stats, rules=load_rules(), milestones=MilestoneStore(table)))  # noqa: B010


def call_worker(module: ModuleType, event: dict[str, Any]) -> set[str]:
    result = module.handler(event, LocalContext(function_name="worker"))
    return {item["itemIdentifier"] for item in result["batchItemFailures"]}


def test_worker_writes_the_reached_milestones_of_each_message(worker: ModuleType, table: Table) -> None:
    # GIVEN the sample batch of two evaluations whose members are busy
    stats = FakeStats({"188055": BUSY, "member@example.com": BUSY_BY_EMAIL})
    use_stats(worker, table, stats)

    # WHEN the worker handles it twice, as a redelivery would
    first = call_worker(worker, sample("worker-evaluate.json"))
    second = call_worker(worker, sample("worker-evaluate.json"))

    # THEN no message failed and each member has each reached milestone exactly once
    assert first == second == set()
    store = MilestoneStore(table)
    by_id = {str(item["milestone_id"]): item for item in store.records(MemberRef(identifier="188055"))}
    assert set(by_id) == {"first-steps", "conversation-starter", "streak-3", "streak-7"}
    assert by_id["streak-7"]["trigger"] == "webhook"
    assert int(by_id["streak-7"]["value"]) == 10
    by_email = store.records(MemberRef(identifier="5f8d0d55b54764421b7156c3"))
    assert {str(item["trigger"]) for item in by_email} == {"scan"}
    assert {str(item["requested_identifier"]) for item in by_email} == {"member@example.com"}
    assert len(stats.calls) == 4


def test_worker_records_one_person_once_whether_named_by_id_or_by_email(worker: ModuleType, table: Table) -> None:
    # GIVEN a batch naming the same platform user once by user id and once by email
    use_stats(worker, table, FakeStats({"188055": BUSY, "member@example.com": BUSY}))

    # WHEN the worker handles it
    failed = call_worker(worker, sample("worker-evaluate.json"))

    # THEN the person's milestones are recorded once, under the platform's user id
    assert failed == set()
    items = table.scan()["Items"]
    assert {str(item["pk"]) for item in items} == {"MEMBER#userId#188055"}
    assert len(items) == len({str(item["sk"]) for item in items}) == 4


def test_worker_stops_calling_the_platform_once_the_key_is_refused(
    worker: ModuleType, table: Table, queues: Queues
) -> None:
    # GIVEN a platform that refuses the API key
    stats = FakeStats({"188055": PlatformAuthError("the API key was refused", status_code=401)})
    use_stats(worker, table, stats)
    event = sample("worker-evaluate.json")

    # WHEN the worker handles a batch of two on a first receive
    failed = call_worker(worker, event)

    # THEN both are retried later, but the platform was called only once
    assert failed == {record["messageId"] for record in event["Records"]}
    assert len(stats.calls) == 1
    assert messages(queues, queues.dead_letter_url) == []


def test_worker_leaves_work_it_has_no_time_for_on_the_queue(worker: ModuleType, table: Table) -> None:
    # GIVEN an invocation with less time left than two platform calls need
    stats = FakeStats({"188055": BUSY, "member@example.com": BUSY})
    use_stats(worker, table, stats)
    event = sample("worker-evaluate.json")

    # WHEN the worker handles a batch
    result = worker.handler(event, LocalContext(function_name="worker", timeout_seconds=15))

    # THEN nothing is attempted and every message is reported for a later invocation
    assert {item["itemIdentifier"] for item in result["batchItemFailures"]} == {
        r["messageId"] for r in event["Records"]
    }
    assert stats.calls == []


def test_worker_retries_when_the_api_token_secret_cannot_be_read(worker: ModuleType, queues: Queues) -> None:
    # GIVEN a worker whose API token secret was deleted
    boto3.client("secretsmanager").delete_secret(SecretId="api-token", ForceDeleteWithoutRecovery=True)
    worker.platform._token = SecretValue("api-token", max_age=0)
    event = sample("worker-evaluate.json")
    event["Records"] = event["Records"][:1]

    # WHEN the worker handles a message on its first receive
    failed = call_worker(worker, event)

    # THEN the message is retried rather than dead-lettered
    assert failed == {event["Records"][0]["messageId"]}
    assert messages(queues, queues.dead_letter_url) == []


def test_worker_reports_a_retryable_failure_for_that_message_only(
    worker: ModuleType, table: Table, queues: Queues
) -> None:
    # GIVEN a platform that is unavailable for one of the two members
    use_stats(
        worker, table, FakeStats({"188055": PlatformUnavailable("503", status_code=503), "member@example.com": BUSY})
    )
    event = sample("worker-evaluate.json")

    # WHEN the worker handles the batch on a first receive
    failed = call_worker(worker, event)

    # THEN only that message is reported for a retry, and nothing is dead-lettered
    assert failed == {event["Records"][0]["messageId"]}
    assert messages(queues, queues.dead_letter_url) == []


@pytest.mark.parametrize(
    ("failure", "receive_count", "hidden_for"),
    [
        pytest.param(PlatformUnavailable("429", status_code=429, retry_after=120), 1, 120, id="retry-after"),
        pytest.param(PlatformUnavailable("429", status_code=429, retry_after=0.2), 1, 30, id="short-retry-after"),
        pytest.param(
            PlatformUnavailable("429", status_code=429, retry_after=99_999), 1, 21_600, id="retry-after-capped"
        ),
        pytest.param(PlatformUnavailable("503", status_code=503), 1, 30, id="first-backoff"),
        pytest.param(PlatformUnavailable("503", status_code=503), 3, 120, id="third-backoff"),
        pytest.param(PlatformAuthError("refused", status_code=401), 4, 240, id="auth-backoff"),
    ],
)
def test_worker_hides_a_failed_message_for_its_backoff(
    worker: ModuleType, table: Table, queues: Queues, failure: Exception, receive_count: int, hidden_for: int
) -> None:
    # GIVEN a real message on the work queue, received for the nth time, whose evaluation fails
    use_stats(worker, table, FakeStats({"188055": failure}))
    body = sample("worker-evaluate.json")["Records"][0]["body"]
    queues.sqs.send_message(QueueUrl=queues.work_url, MessageBody=body)
    message = queues.sqs.receive_message(QueueUrl=queues.work_url, MessageSystemAttributeNames=["All"])["Messages"][0]
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:work")
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    changes: list[dict[str, Any]] = []
    change = worker.sqs.change_message_visibility

    def recording(**kwargs: Any) -> Any:
        changes.append(kwargs)
        return change(**kwargs)

    setattr(worker.sqs, "change_message_visibility", recording)  # noqa: B010

    # WHEN the worker handles it
    failed = call_worker(worker, {"Records": [record]})

    # THEN it is retried later: hidden for the platform's Retry-After, or for an exponential backoff
    assert failed == {record["messageId"]}
    assert [item["VisibilityTimeout"] for item in changes] == [hidden_for]
    assert queues.sqs.receive_message(QueueUrl=queues.work_url).get("Messages", []) == []


def test_worker_parks_a_retryable_failure_on_the_last_receive(worker: ModuleType, table: Table, queues: Queues) -> None:
    # GIVEN a platform still unavailable when the message is received for the fifth time
    use_stats(worker, table, FakeStats({"188055": PlatformUnavailable("answered 503", status_code=503)}))
    event = sample("worker-evaluate.json")
    event["Records"] = event["Records"][:1]
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"

    # WHEN the worker handles it
    failed = call_worker(worker, event)

    # THEN it is not retried again but parked in the DLQ with its reason
    assert failed == set()
    parked = messages(queues, queues.dead_letter_url)
    assert len(parked) == 1
    assert parked[0]["Body"] == event["Records"][0]["body"]
    assert parked[0]["MessageAttributes"]["failure_kind"]["StringValue"] == "PlatformUnavailable"
    assert parked[0]["MessageAttributes"]["failure_reason"]["StringValue"] == "answered 503"
    assert parked[0]["MessageAttributes"]["receive_count"]["StringValue"] == "5"


def test_worker_parks_permanent_failures_at_once(worker: ModuleType, table: Table, queues: Queues) -> None:
    # GIVEN a member the platform does not know and a message that is not an evaluation request
    use_stats(worker, table, FakeStats({"188055": MemberNotFound("no such member", status_code=404)}))
    event = sample("worker-evaluate.json")
    event["Records"][1]["body"] = '{"member": {}}'

    # WHEN the worker handles the batch on a first receive
    failed = call_worker(worker, event)

    # THEN neither is retried; both wait in the DLQ with their reasons
    assert failed == set()
    kinds = {m["MessageAttributes"]["failure_kind"]["StringValue"] for m in messages(queues, queues.dead_letter_url)}
    assert kinds == {"MemberNotFound", "MalformedMessage"}


def test_worker_retires_a_member_the_platform_does_not_know(worker: ModuleType, table: Table, queues: Queues) -> None:
    # GIVEN a registered member the platform answers 404 for
    MemberStore(table).register(MemberRef(identifier="188055"), now=utc_now(), event_type="user-joins-server")
    use_stats(worker, table, FakeStats({"188055": MemberNotFound("User not found", status_code=404)}))
    event = sample("worker-evaluate.json")
    event["Records"] = event["Records"][:1]

    # WHEN the worker handles its evaluation
    failed = call_worker(worker, event)

    # THEN the work is dead-lettered and the member leaves the scans instead of failing every period
    assert failed == set()
    assert len(messages(queues, queues.dead_letter_url)) == 1
    profile = table.get_item(Key={"pk": "MEMBER#userId#188055", "sk": "PROFILE"})["Item"]
    assert "next_scan_at" not in profile
    assert "User not found" in str(profile["retired_reason"])


def test_worker_refuses_rules_the_window_cannot_reach(
    monkeypatch: pytest.MonkeyPatch, worker: ModuleType, tmp_path: Path
) -> None:
    # GIVEN a rules file with a 40-day streak and a 30-day window
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nmilestones:\n  - {id: long, title: Long, kind: streak, days: 40}\n", encoding="utf-8")
    monkeypatch.setenv("RULES_FILE", str(rules))

    # WHEN the worker starts, THEN it names the unreachable milestone
    with pytest.raises(RulesError, match="long"):
        load_function("worker")


# -- scan ------------------------------------------------------------------------------------


@pytest.fixture
def scan(monkeypatch: pytest.MonkeyPatch, table: Table, queues: Queues) -> ModuleType:
    fresh_service(monkeypatch, "scan")
    monkeypatch.setenv("TABLE_NAME", table.name)
    monkeypatch.setenv("QUEUE_URL", queues.work_url)
    monkeypatch.setenv("SCAN_PERIOD_HOURS", "24")
    return load_function("scan")


def register(table: Table, count: int) -> list[MemberRef]:
    members = [MemberRef(identifier=str(188000 + number)) for number in range(count)]
    store = MemberStore(table)
    for member in members:
        store.register(member, now=utc_now(), event_type="test")
    return members


def test_scan_enqueues_each_due_member_once_per_period(scan: ModuleType, table: Table, queues: Queues) -> None:
    # GIVEN 23 registered members, all due
    members = register(table, 23)

    # WHEN the schedule invokes the scan twice
    first = scan.handler(
        copy.deepcopy(sample("scan-schedule.json")), LocalContext(function_name="scan", timeout_seconds=300)
    )
    second = scan.handler(sample("scan-schedule.json"), LocalContext(function_name="scan", timeout_seconds=300))

    # THEN the first run enqueues every member and the second finds none due
    assert first == {"due": 23, "enqueued": 23, "claimed_elsewhere": 0, "released": 0, "complete": True}
    assert second["due"] == 0
    queued: list[EvaluationRequest] = []
    while batch := messages(queues, queues.work_url):
        queued.extend(EvaluationRequest.model_validate_json(message["Body"]) for message in batch)
        queues.sqs.delete_message_batch(
            QueueUrl=queues.work_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert sorted(request.member.identifier for request in queued) == sorted(m.identifier for m in members)
    assert {request.trigger for request in queued} == {"scan"}


def test_scan_stops_before_its_deadline(scan: ModuleType, table: Table) -> None:
    # GIVEN due members and a run with less time left than the safety margin
    register(table, 5)

    # WHEN the schedule invokes the scan
    summary = scan.handler(sample("scan-schedule.json"), LocalContext(function_name="scan", timeout_seconds=5))

    # THEN it stops without claiming anyone, leaving them due for the next run
    assert summary["complete"] is False
    assert summary["enqueued"] == 0
