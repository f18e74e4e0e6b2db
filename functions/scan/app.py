"""Scan entry point: on a schedule, enqueue an evaluation for every member that is due."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_milestones.aws import AWS_CONFIG
from community_milestones.config import ScanSettings
from community_milestones.queueing import WorkQueue
from community_milestones.scanning import MemberScan
from community_milestones.storage import MemberStore

settings = ScanSettings.from_env()
logger = Logger()
# The domain package logs through the standard library; give it this function's structured output.
copy_config_to_registered_loggers(source_logger=logger, include={"community_milestones"})
tracer = Tracer()
metrics = Metrics()

scan = MemberScan(
    members=MemberStore(boto3.resource("dynamodb", config=AWS_CONFIG).Table(settings.table_name)),
    queue=WorkQueue(boto3.client("sqs", config=AWS_CONFIG), settings.queue_url),
    period=timedelta(hours=settings.scan_period_hours),
    page_size=settings.scan_page_size,
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for EventBridge Scheduler; returns the run's counts."""
    correlation_id = f"scan-{context.aws_request_id}"
    logger.set_correlation_id(correlation_id)

    summary = scan.run(
        correlation_id=correlation_id,
        time_left_ms=context.get_remaining_time_in_millis,
        safety_margin_ms=settings.scan_safety_margin_ms,
    )

    metrics.add_metric(name="MembersDue", unit=MetricUnit.Count, value=summary.due)
    metrics.add_metric(name="MembersEnqueued", unit=MetricUnit.Count, value=summary.enqueued)
    logger.info("scan finished", extra=asdict(summary))
    return asdict(summary)
