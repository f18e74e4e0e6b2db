"""Webhook deliveries: the shared key, and bodies whose exact fields the platform does not publish."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from community_milestones.errors import DeliveryError, DeliveryTooLarge, DeliveryUnauthorized, MalformedDelivery
from community_milestones.members import EvaluationRequest, MemberRef
from community_milestones.webhooks import Delivery, SharedKeyVerifier, parse_delivery
from community_milestones.webhooks.deliveries import MAX_BODY_BYTES, MAX_ID_LENGTH
from local_stack.functions import LocalContext
from tests.helpers import EVENT_KEY, Queues, receive_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

WEBHOOK_KEY = "9f2c4e1a-webhook-key"
SAMPLE_DELIVERY = Path(__file__).resolve().parents[2] / "events" / "webhook-user-joins-server.json"


def verifier(key: str = WEBHOOK_KEY) -> SharedKeyVerifier:
    return SharedKeyVerifier(lambda: key)


def user(identifier: str) -> MemberRef:
    return MemberRef(identifier=identifier, identifier_type="userId")


# ---------------------------------------------------------------------------
# The shared key
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["x-api-key", "X-Api-Key", "X-API-KEY"])
def test_the_right_key_passes_under_any_header_case(header: str) -> None:
    # GIVEN a delivery carrying the webhook key, its header name in any case
    headers = {"content-type": "application/json", header: WEBHOOK_KEY}

    # WHEN it is verified
    # THEN it passes
    verifier().verify(headers)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({"x-api-key": "9f2c4e1a-webhook-kez"}, "does not match", id="wrong-key"),
        pytest.param({"x-api-key": WEBHOOK_KEY[:-1]}, "does not match", id="key-prefix"),
        pytest.param({"x-api-key": WEBHOOK_KEY + " "}, "does not match", id="key-with-trailing-space"),
        pytest.param({"content-type": "application/json"}, "is missing", id="missing-header"),
        pytest.param({"x-api-key": ""}, "is missing", id="empty-header"),
        pytest.param({"authorization": f"Bearer {WEBHOOK_KEY}"}, "is missing", id="key-in-another-header"),
    ],
)
def test_a_wrong_missing_or_empty_key_is_unauthorized(headers: dict[str, str], reason: str) -> None:
    # GIVEN a delivery without the right key
    # WHEN it is verified
    with pytest.raises(DeliveryUnauthorized) as raised:
        verifier().verify(headers)

    # THEN it is refused as unauthorized (401), and the error never repeats the expected key
    assert raised.value.status_code == 401
    assert reason in str(raised.value)
    assert WEBHOOK_KEY not in str(raised.value)


@pytest.mark.parametrize("provided", ["", "anything", " "])
def test_an_empty_expected_key_refuses_everything(provided: str) -> None:
    # GIVEN a webhook whose configured key is empty
    empty = verifier(key="")

    # WHEN any delivery is verified
    # THEN it is refused
    with pytest.raises(DeliveryUnauthorized):
        empty.verify({"x-api-key": provided})


def test_the_key_is_read_at_each_verification() -> None:
    # GIVEN a key that is rotated between two deliveries
    keys = iter(["old-key", "new-key"])
    rotating = SharedKeyVerifier(lambda: next(keys))

    # WHEN the first delivery carries the old key and the second the new one
    # THEN both pass
    rotating.verify({"x-api-key": "old-key"})
    rotating.verify({"x-api-key": "new-key"})


# ---------------------------------------------------------------------------
# Who the delivery is about
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "member"),
    [
        pytest.param({"userId": "188055"}, user("188055"), id="userId"),
        pytest.param({"user_id": "188055"}, user("188055"), id="user_id"),
        pytest.param({"user": {"id": "188055"}}, user("188055"), id="user.id"),
        pytest.param({"user": {"userId": "188055"}}, user("188055"), id="user.userId"),
        pytest.param({"user": {"_id": "64f1c2aa9b3e4d0012ab34cd"}}, user("64f1c2aa9b3e4d0012ab34cd"), id="user._id"),
        pytest.param({"id": "188055"}, user("188055"), id="id"),
        pytest.param({"userId": 188055}, user("188055"), id="numeric-id"),
        pytest.param({"user": {"id": 188055}}, user("188055"), id="numeric-user.id"),
        pytest.param({"userId": " 188055 "}, user("188055"), id="padded-id"),
        pytest.param(
            {"email": "Ada@Example.com"}, MemberRef(identifier="ada@example.com", identifier_type="email"), id="email"
        ),
        pytest.param(
            {"user": {"email": "ada@example.com"}},
            MemberRef(identifier="ada@example.com", identifier_type="email"),
            id="user.email",
        ),
    ],
)
def test_every_spelling_of_the_user_is_accepted(body: dict[str, object], member: MemberRef) -> None:
    # GIVEN a body naming the user under one of its likely spellings
    # WHEN it is parsed
    delivery = parse_delivery(json.dumps(body))

    # THEN the member is found, without a community
    assert delivery == Delivery(member=member, community_id=None)


@pytest.mark.parametrize(
    ("body", "community_id"),
    [
        pytest.param({"communityId": "c-1"}, "c-1", id="communityId"),
        pytest.param({"serverId": "c-1"}, "c-1", id="serverId"),
        pytest.param({"server_id": "c-1"}, "c-1", id="server_id"),
        pytest.param({"community": {"id": "c-1"}}, "c-1", id="community.id"),
        pytest.param({"server": {"id": 42}}, "42", id="numeric-server.id"),
        pytest.param({"communityId": "", "serverId": "c-2"}, "c-2", id="empty-skipped"),
        pytest.param({"communityId": True}, None, id="boolean-ignored"),
    ],
)
def test_every_spelling_of_the_community_is_accepted(body: dict[str, object], community_id: str | None) -> None:
    # GIVEN a body naming the user and the community under one of its spellings
    # WHEN it is parsed
    delivery = parse_delivery(json.dumps({"userId": "188055", **body}))

    # THEN the community is found
    assert delivery.community_id == community_id


def test_a_user_id_takes_precedence_over_an_email() -> None:
    # GIVEN a body with both a user id and an email address
    body = json.dumps({"email": "ada@example.com", "userId": "188055", "communityId": "c-1"})

    # WHEN it is parsed
    delivery = parse_delivery(body)

    # THEN the user id identifies the member
    assert delivery == Delivery(member=user("188055"), community_id="c-1")


def test_the_first_spelling_in_the_documented_order_wins() -> None:
    # GIVEN a body with several user id spellings
    body = json.dumps({"id": "event-9", "user": {"id": "3"}, "user_id": "2", "userId": "1"})

    # WHEN it is parsed
    # THEN userId wins over user_id, user.id and id
    assert parse_delivery(body).member == user("1")


def test_a_body_in_bytes_is_parsed() -> None:
    # GIVEN a body as the raw bytes of a request, with a non-ASCII field
    body = json.dumps({"userId": "188055", "name": "Zoë"}, ensure_ascii=False).encode("utf-8")

    # WHEN it is parsed
    # THEN the member is found
    assert parse_delivery(body).member == user("188055")


# ---------------------------------------------------------------------------
# Bodies that name nobody
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("", "the body is empty", id="empty-body"),
        pytest.param(b"", "the body is empty", id="empty-bytes"),
        pytest.param(None, "the body is empty", id="no-body"),
        pytest.param("{not json", "not valid JSON", id="invalid-json"),
        pytest.param(b"\xff\xfe\xfa", "not valid JSON", id="undecodable-bytes"),
        pytest.param("   ", "not valid JSON", id="blank-body"),
        pytest.param('["188055"]', "not a JSON object", id="array"),
        pytest.param('"188055"', "not a JSON object", id="string"),
        pytest.param("188055", "not a JSON object", id="number"),
        pytest.param("null", "not a JSON object", id="null"),
        pytest.param("{}", "no user identifier found", id="empty-object"),
        pytest.param('{"name": "Ada", "communityId": "c-1"}', "no user identifier found", id="no-identifier"),
        pytest.param('{"userId": true}', "no user identifier found", id="boolean-id"),
        pytest.param('{"user": {"id": false}}', "no user identifier found", id="boolean-user.id"),
        pytest.param('{"userId": ""}', "no user identifier found", id="empty-id"),
        pytest.param('{"userId": "   "}', "no user identifier found", id="blank-id"),
        pytest.param('{"userId": 1.5}', "no user identifier found", id="fractional-id"),
        pytest.param('{"userId": null}', "no user identifier found", id="null-id"),
        pytest.param('{"userId": ["188055"]}', "no user identifier found", id="list-id"),
        pytest.param('{"user": "188055"}', "no user identifier found", id="user-not-an-object"),
        pytest.param('{"email": "not-an-address"}', "not an email address", id="email-without-at"),
        pytest.param('{"email": "@"}', "not an email address", id="email-only-at"),
        pytest.param(json.dumps({"userId": "1" * 321}), "at most 320 characters", id="id-too-long"),
        pytest.param('{"userId": "188055", "communityId": "\\udc00"}', "not printable text", id="lone-surrogate"),
        pytest.param('{"userId": "1880\\u000055"}', "not printable text", id="control-character"),
    ],
)
def test_a_body_without_a_usable_user_is_malformed(body: str | bytes | None, reason: str) -> None:
    # GIVEN a body that names no usable user
    # WHEN it is parsed
    with pytest.raises(MalformedDelivery) as raised:
        parse_delivery(body)

    # THEN it is refused as malformed (400) with the reason
    assert raised.value.status_code == 400
    assert reason in str(raised.value)


def test_an_explicit_email_wins_over_a_bare_id() -> None:
    # GIVEN a body whose top-level id may name the event, and which names the user by email
    body = '{"id": "evt_1", "email": "Member0@Community.test"}'

    # WHEN it is parsed
    delivery = parse_delivery(body)

    # THEN the email names the member
    assert delivery.member == MemberRef(identifier="member0@community.test", identifier_type="email")


def test_a_boolean_id_does_not_hide_a_usable_spelling() -> None:
    # GIVEN a body whose userId is a boolean but whose user_id is usable
    body = json.dumps({"userId": True, "user_id": "188055"})

    # WHEN it is parsed
    # THEN the usable spelling identifies the member
    assert parse_delivery(body).member == user("188055")


def test_a_deeply_nested_body_is_malformed_rather_than_a_crash() -> None:
    # GIVEN a small body nested far deeper than any delivery (30 000 levels in 60 kB)
    body = '{"userId": ' + "[" * 30_000 + "]" * 30_000 + "}"
    assert len(body) <= MAX_BODY_BYTES

    # WHEN it is parsed
    # THEN it is refused as malformed (400), not a RecursionError that the handler turns into a 500
    with pytest.raises(MalformedDelivery, match="nested too deeply"):
        parse_delivery(body)


@pytest.mark.parametrize("body_type", [str, bytes])
def test_a_body_larger_than_any_delivery_is_too_large(body_type: type[str] | type[bytes]) -> None:
    # GIVEN a body one byte over the limit
    text = json.dumps({"userId": "188055", "padding": ""})
    text = text.replace('""', '"' + "x" * (MAX_BODY_BYTES - len(text) + 1) + '"')
    body: str | bytes = text if body_type is str else text.encode("utf-8")

    # WHEN it is parsed
    # THEN it is refused as too large (413) before it is decoded
    with pytest.raises(DeliveryTooLarge) as raised:
        parse_delivery(body)
    assert raised.value.status_code == 413


def test_a_body_at_the_limit_is_parsed() -> None:
    # GIVEN a body exactly as large as the limit allows
    text = json.dumps({"userId": "188055", "padding": ""})
    body = text.replace('""', '"' + "x" * (MAX_BODY_BYTES - len(text)) + '"')
    assert len(body) == MAX_BODY_BYTES

    # WHEN it is parsed
    # THEN the member is found
    assert parse_delivery(body).member == user("188055")


def test_an_over_long_community_id_is_malformed() -> None:
    # GIVEN a body whose community id is longer than any id
    body = json.dumps({"userId": "188055", "communityId": "c" * (MAX_ID_LENGTH + 1)})

    # WHEN it is parsed
    # THEN it is refused as malformed, as an over-long user id is, instead of reaching the table and the queue
    with pytest.raises(MalformedDelivery, match="community id is longer"):
        parse_delivery(body)


def test_a_community_id_at_the_limit_is_kept() -> None:
    # GIVEN a community id exactly as long as allowed
    community_id = "c" * MAX_ID_LENGTH

    # WHEN the body is parsed
    # THEN the community id is kept whole
    assert parse_delivery(json.dumps({"userId": "1", "communityId": community_id})).community_id == community_id


def test_delivery_errors_map_to_client_errors() -> None:
    # GIVEN the ways a delivery is refused
    # WHEN a handler maps them to HTTP statuses
    # THEN all are client errors under one base class
    assert issubclass(DeliveryUnauthorized, DeliveryError)
    assert issubclass(MalformedDelivery, DeliveryError)
    assert issubclass(DeliveryTooLarge, DeliveryError)
    assert (DeliveryUnauthorized.status_code, MalformedDelivery.status_code, DeliveryTooLarge.status_code) == (
        401,
        400,
        413,
    )


# ---------------------------------------------------------------------------
# The webhook entry point: a refused delivery is a 4xx and leaves no trace
# ---------------------------------------------------------------------------


def deliver(webhook: ModuleType, *, body: str, headers: dict[str, str] | None = None) -> int:
    event: dict[str, Any] = json.loads(SAMPLE_DELIVERY.read_text(encoding="utf-8"))
    event["headers"] = {**event["headers"], "x-api-key": EVENT_KEY, **(headers or {})}
    event["body"] = body
    response = webhook.handler(event, LocalContext(function_name="webhook"))
    return int(response["statusCode"])


def test_the_entry_point_accepts_a_sample_delivery(webhook: ModuleType, table: Table, queues: Queues) -> None:
    # GIVEN a well-formed delivery with the right key
    # WHEN the webhook handles it
    status = deliver(webhook, body=json.dumps({"userId": "188055"}))

    # THEN it is accepted, registered and enqueued
    assert status == 202
    assert table.scan()["Count"] == 1
    assert len(receive_all(queues.sqs, queues.work_url)) == 1


# An unhandled error publishes no metrics and Powertools warns about that; the warning, an error under
# pytest's settings, would hide the unhandled error these tests exist to show.
@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_an_over_long_webhook_id_is_refused_and_leaves_no_trace(
    webhook: ModuleType, table: Table, queues: Queues
) -> None:
    # GIVEN a delivery whose webhook-id header, the correlation id, is longer than a work item allows
    headers = {"webhook-id": "w" * (MAX_ID_LENGTH + 1)}

    # WHEN the webhook handles it
    status = deliver(webhook, body=json.dumps({"userId": "188055"}), headers=headers)

    # THEN it answers 400, not a 500 after registering the member, and writes nothing
    assert status == 400
    assert table.scan()["Count"] == 0
    assert receive_all(queues.sqs, queues.work_url) == []


def test_a_webhook_id_at_the_limit_becomes_the_correlation_id(webhook: ModuleType, queues: Queues) -> None:
    # GIVEN a delivery whose webhook-id is exactly as long as allowed
    webhook_id = "w" * MAX_ID_LENGTH

    # WHEN the webhook handles it
    status = deliver(webhook, body=json.dumps({"userId": "188055"}), headers={"webhook-id": webhook_id})

    # THEN the queued work carries it whole
    assert status == 202
    (message,) = receive_all(queues.sqs, queues.work_url)
    assert EvaluationRequest.model_validate_json(message["Body"]).correlation_id == webhook_id


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param('{"userId": ' + "[" * 30_000 + "]" * 30_000 + "}", 400, id="deeply-nested"),
        pytest.param(json.dumps({"userId": "188055", "communityId": "c" * 1000}), 400, id="long-community-id"),
        pytest.param(json.dumps({"userId": "188055", "communityId": "c" * 500_000}), 413, id="too-large"),
    ],
)
@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_a_hostile_body_gets_a_4xx_from_the_entry_point(
    webhook: ModuleType, table: Table, queues: Queues, body: str, status: int
) -> None:
    # GIVEN an authenticated delivery whose body is deeply nested, names an over-long community or is huge
    # WHEN the webhook handles it
    answered = deliver(webhook, body=body)

    # THEN it answers with a client error and writes nothing
    assert answered == status
    assert table.scan()["Count"] == 0
    assert receive_all(queues.sqs, queues.work_url) == []


@pytest.mark.parametrize(
    "webhook_id", ["abc\x01def", "msg\u200bid", "msg\nid"], ids=["control", "zero-width", "newline"]
)
def test_a_webhook_id_that_is_not_printable_ascii_is_refused(
    webhook: ModuleType, table: Table, queues: Queues, webhook_id: str
) -> None:
    # GIVEN a delivery whose webhook-id SQS could not carry as it stands
    headers = {"webhook-id": webhook_id}

    # WHEN the webhook handles it
    status = deliver(webhook, body=json.dumps({"userId": "188055"}), headers=headers)

    # THEN it is a 400 and nothing is registered or enqueued
    assert status == 400
    assert table.scan()["Count"] == 0
    assert receive_all(queues.sqs, queues.work_url) == []


def test_a_lone_surrogate_in_the_event_body_is_a_400(webhook: ModuleType, table: Table) -> None:
    # GIVEN an event whose body text holds a lone surrogate, as no HTTP request can carry
    body = '{"userId": "188\ud800055"}'

    # WHEN the webhook handles it, THEN it is refused, not a crash
    assert deliver(webhook, body=body) == 400
    assert table.scan()["Count"] == 0
