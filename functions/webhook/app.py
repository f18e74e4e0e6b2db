"""Webhook entry point: authenticate a delivery, register the member, enqueue its evaluation, answer 202."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_milestones.aws import AWS_CONFIG
from community_milestones.clock import utc_now
from community_milestones.config import WebhookSettings
from community_milestones.errors import ConfigurationError, DeliveryError, MalformedDelivery
from community_milestones.members import EvaluationRequest
from community_milestones.queueing import WorkQueue
from community_milestones.secrets import SecretValue
from community_milestones.storage import MemberStore
from community_milestones.webhooks import SharedKeyVerifier, parse_delivery
from community_milestones.webhooks.deliveries import MAX_ID_LENGTH

USER_JOINS_SERVER = "user-joins-server"

settings = WebhookSettings.from_env()
logger = Logger()
# The domain package logs through the standard library; give it this function's structured output.
copy_config_to_registered_loggers(source_logger=logger, include={"community_milestones"})
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()

members = MemberStore(boto3.resource("dynamodb", config=AWS_CONFIG).Table(settings.table_name))
work_queue = WorkQueue(boto3.client("sqs", config=AWS_CONFIG), settings.queue_url)
webhook_key = SecretValue(
    settings.webhook_key_secret_arn,
    max_age=settings.secret_max_age_seconds,
    client=boto3.client("secretsmanager", config=AWS_CONFIG),
)
verifier = SharedKeyVerifier(webhook_key)


@app.post(f"/webhooks/{USER_JOINS_SERVER}")
def user_joins_server() -> Response[str]:
    """A member joined the community server."""
    return accept(USER_JOINS_SERVER)


def accept(event_type: str) -> Response[str]:
    """Authenticate, parse, register and enqueue; every refusal happens before anything is written."""
    event = app.current_event
    verifier.verify(event.headers)
    delivery = parse_delivery(raw_body(event))

    now = utc_now()
    request = EvaluationRequest(
        member=delivery.member,
        trigger="webhook",
        requested_at=now,
        correlation_id=correlation_id_of(event),
        event_type=event_type,
        community_id=delivery.community_id,
    )

    logger.set_correlation_id(request.correlation_id)

    members.register(delivery.member, now=now, event_type=event_type, community_id=delivery.community_id)
    message_id = work_queue.send(request)

    metrics.add_metric(name="DeliveriesAccepted", unit=MetricUnit.Count, value=1)
    logger.info("delivery accepted", extra={"event_type": event_type, "member_key": delivery.member.key})
    return _json(202, {"status": "accepted", "member": delivery.member.key, "message_id": message_id})


def refuse(exc: DeliveryError) -> Response[str]:
    """A client's mistake: a 4xx with the reason, and nothing registered or enqueued."""
    metrics.add_metric(name="DeliveriesRefused", unit=MetricUnit.Count, value=1)
    logger.warning("delivery refused", extra={"status": exc.status_code, "reason": str(exc)})
    return _json(exc.status_code, {"status": "error", "message": str(exc)})


def unavailable(exc: ConfigurationError) -> Response[str]:
    """Our own fault (an unreadable secret): 503 so the platform retries, the detail only in the log."""
    metrics.add_metric(name="DeliveriesFailed", unit=MetricUnit.Count, value=1)
    logger.error("webhook is misconfigured", extra={"reason": str(exc)})
    return _json(503, {"status": "error", "message": "the webhook receiver is not configured; try again later"})


def not_found(_exc: Exception) -> Response[str]:
    """A route this API does not serve."""
    metrics.add_metric(name="DeliveriesUnrouted", unit=MetricUnit.Count, value=1)
    return _json(404, {"status": "error", "message": "no webhook is served at this path"})


app.not_found(not_found)
app.exception_handler(DeliveryError)(refuse)
app.exception_handler(ConfigurationError)(unavailable)


def correlation_id_of(event: APIGatewayProxyEventV2) -> str:
    """The delivery's `webhook-id` when it sends a usable one, else the API's request id."""
    webhook_id = (event.headers.get("webhook-id") or "").strip()
    if len(webhook_id) > MAX_ID_LENGTH:
        raise MalformedDelivery(f"the webhook-id header is longer than {MAX_ID_LENGTH} characters")
    if not webhook_id.isprintable() or not webhook_id.isascii():
        raise MalformedDelivery("the webhook-id header holds characters other than printable ASCII")
    return webhook_id or event.request_context.request_id


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The body exactly as sent: decoding it is the parser's job, so a bad encoding is a 400, not a crash."""
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise MalformedDelivery("the body is not valid base64") from None
    # A lone surrogate cannot come off the wire as text; kept as bytes, it fails JSON decoding: a 400.
    return body.encode("utf-8", errors="surrogatepass")


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for the HTTP API."""
    return app.resolve(event, context)
