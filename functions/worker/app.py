"""Worker entry point: evaluate the members named on the work queue and record new milestones."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from community_milestones.aws import AWS_CONFIG
from community_milestones.clock import utc_now
from community_milestones.config import WorkerSettings
from community_milestones.errors import (
    KeyRefusedInBatch,
    MemberNotFound,
    MilestonesError,
    OutOfTime,
    PlatformAuthError,
)
from community_milestones.evaluation import MemberEvaluator
from community_milestones.members import EvaluationRequest
from community_milestones.queueing import DeadLetters
from community_milestones.retries import RetryPolicy
from community_milestones.returning_ai import ReturningAIClient
from community_milestones.rules import load_rules
from community_milestones.secrets import SecretValue
from community_milestones.storage import MemberStore, MilestoneStore

settings = WorkerSettings.from_env()
rules = load_rules(settings.rules_file)
rules.check_window(settings.stats_window_days)

logger = Logger()
# The domain package logs through the standard library; give it this function's structured output.
copy_config_to_registered_loggers(source_logger=logger, include={"community_milestones"})
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

sqs = boto3.client("sqs", config=AWS_CONFIG)
dead_letters = DeadLetters(sqs, settings.dead_letter_queue_url)
platform = ReturningAIClient(
    settings.platform_base_url,
    token=SecretValue(
        settings.api_token_secret_arn,
        max_age=settings.secret_max_age_seconds,
        client=boto3.client("secretsmanager", config=AWS_CONFIG),
    ),
    days=settings.stats_window_days,
    timeout=settings.platform_timeout_seconds,
)
retry_policy = RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)
table = boto3.resource("dynamodb", config=AWS_CONFIG).Table(settings.table_name)
members = MemberStore(table)
evaluator = MemberEvaluator(stats=platform, rules=rules, milestones=MilestoneStore(table))


batch_state: dict[str, str | None] = {"key_refused": None}


@tracer.capture_method
def evaluate_record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """Evaluate one queued request; raising marks only this message as failed, to be retried."""
    receive_count = int(record.attributes.approximate_receive_count)
    try:
        request = EvaluationRequest.model_validate_json(record.body)
    except ValidationError as exc:
        park(record, f"the message is not an evaluation request ({exc.error_count()} errors)", "MalformedMessage")
        return

    logger.append_keys(correlation_id=request.correlation_id, member_key=request.member.key, trigger=request.trigger)
    try:
        check_can_start(lambda_context)
        outcome = evaluator.evaluate(request)
    except Exception as exc:
        if isinstance(exc, PlatformAuthError):
            batch_state["key_refused"] = str(exc)
        retryable = not isinstance(exc, MilestonesError) or exc.retryable
        if retryable and receive_count < settings.max_receive_count:
            delay = retry_policy.delay(exc, receive_count)
            postpone(record, delay)
            metrics.add_metric(name="EvaluationsRetried", unit=MetricUnit.Count, value=1)
            logger.warning(
                "evaluation failed, will be retried",
                extra={"reason": str(exc), "attempt": receive_count, "retry_in_seconds": delay},
            )
            raise
        if isinstance(exc, MemberNotFound):
            members.retire(request.member, now=utc_now(), reason=str(exc))
        park(record, str(exc) or type(exc).__name__, type(exc).__name__)
    else:
        metrics.add_metric(name="MembersEvaluated", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="MilestonesWritten", unit=MetricUnit.Count, value=len(outcome.written))
        logger.info(
            "member evaluated",
            extra={
                "owner_key": outcome.member_key,
                "reached": outcome.reached,
                "written": outcome.written,
                "already_recorded": outcome.already_recorded,
            },
        )
    finally:
        logger.remove_keys(["correlation_id", "member_key", "trigger"])


def check_can_start(context: LambdaContext | None) -> None:
    """Defer an evaluation that could outlive the invocation, or that a key refused earlier in the batch would fail."""
    if batch_state["key_refused"]:
        raise KeyRefusedInBatch(f"not attempted, as earlier in this batch {batch_state['key_refused']}")
    # A stats call may take two requests (a refused key is re-read once), plus the reads and writes.
    needed_ms = 2 * settings.platform_timeout_seconds * 1000 + 5000
    if context is not None and context.get_remaining_time_in_millis() < needed_ms:
        raise OutOfTime(f"not attempted: less than {needed_ms:.0f} ms of the invocation was left")


def postpone(record: SQSRecord, delay: int) -> None:
    """Hide the message for `delay` seconds; if that fails, the queue's visibility timeout applies instead."""
    if settings.queue_url is None:
        return
    try:
        sqs.change_message_visibility(
            QueueUrl=settings.queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
        )
    except (BotoCoreError, ClientError) as exc:
        logger.warning("could not postpone the message", extra={"error": type(exc).__name__})


def park(record: SQSRecord, reason: str, kind: str) -> None:
    """Move work that cannot succeed to the dead-letter queue, with its reason."""
    dead_letters.park(
        record.body,
        reason=reason,
        kind=kind,
        source_message_id=record.message_id,
        receive_count=int(record.attributes.approximate_receive_count),
    )
    metrics.add_metric(name="EvaluationsDeadLettered", unit=MetricUnit.Count, value=1)
    logger.error("evaluation dead-lettered", extra={"reason": reason, "kind": kind, "message_id": record.message_id})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Lambda entry point for the SQS event source; reports failures per message."""
    batch_state["key_refused"] = None
    return process_partial_response(event=event, record_handler=evaluate_record, processor=processor, context=context)
