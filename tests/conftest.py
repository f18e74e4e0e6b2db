"""Fixtures shared by the tests: moto in-process AWS, and the table and queues built from `template.yaml`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from local_stack.functions import load_function
from local_stack.template import load_template, queue_attributes, table_create_kwargs
from tests.helpers import EVENT_KEY, Queues

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

REGION = "us-east-1"
TABLE_NAME = "community-milestones-test"
WORK_QUEUE_NAME = "community-milestones-work-test"
DEAD_LETTER_QUEUE_NAME = "community-milestones-work-dlq-test"

# Any of these would send boto3 past moto's in-process mock to a real endpoint.
_ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_PROFILE",
)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """The SAM template, read once."""
    return load_template()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and moto's in-process mock of every AWS service."""
    for name in _ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

    with mock_aws():
        yield


@pytest.fixture
def table(aws: None, template: dict[str, Any]) -> Table:
    """The milestones table, created from its definition in the template."""
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    created = dynamodb.create_table(**table_create_kwargs(template, TABLE_NAME))
    created.wait_until_exists()
    return created


@pytest.fixture
def queues(aws: None, template: dict[str, Any]) -> Queues:
    """The work queue redriving to its dead-letter queue, both created from the template."""
    sqs = boto3.client("sqs", region_name=REGION)

    dead_letter_url = sqs.create_queue(
        QueueName=DEAD_LETTER_QUEUE_NAME, Attributes=queue_attributes(template, "WorkDeadLetterQueue")
    )["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    work_url = sqs.create_queue(
        QueueName=WORK_QUEUE_NAME, Attributes=queue_attributes(template, "WorkQueue", dead_letter_arn)
    )["QueueUrl"]
    return Queues(sqs=sqs, work_url=work_url, dead_letter_url=dead_letter_url)


def fresh_service(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A service name of its own, so Powertools builds a logger bound to this test's output."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"{name}-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CommunityMilestonesTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, table: Table, queues: Queues) -> ModuleType:
    """The webhook function, loaded as a cold start against the moto table, queue and a secret holding EVENT_KEY."""
    secret = boto3.client("secretsmanager").create_secret(Name="webhook-key", SecretString=EVENT_KEY)
    fresh_service(monkeypatch, "webhook")
    monkeypatch.setenv("TABLE_NAME", table.name)
    monkeypatch.setenv("QUEUE_URL", queues.work_url)
    monkeypatch.setenv("WEBHOOK_KEY_SECRET_ARN", secret["ARN"])
    return load_function("webhook")
