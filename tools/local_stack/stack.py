"""The whole product on one machine: moto, the Returning.AI stand-in, the HTTP front and the three functions.

Everything listens on 127.0.0.1 and is started and stopped here. Lambda's own work is done by
this module too: it invokes the webhook function for each HTTP request (through the front),
polls the work queue and hands batches to the worker as an SQS event, and invokes the scan as
EventBridge Scheduler would.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import boto3
import httpx

from local_stack.aws import LocalResources, aws_environment, create_resources, moto_server, resolve_environment
from local_stack.community import SeededCommunity
from local_stack.front import HttpApiFront
from local_stack.functions import FUNCTIONS_DIR, LocalContext, load_function
from local_stack.standin import ReturningAIStandin, StandinConfig
from local_stack.template import function_environment, function_properties, load_template

WEBHOOK_PATH = "/webhooks/user-joins-server"
FUNCTIONS = {"webhook": "WebhookFunction", "worker": "WorkerFunction", "scan": "ScanFunction"}
LAMBDA_TASK_ROOT = "/var/task/"


@dataclass(frozen=True)
class StackOptions:
    """How the local stack is set up."""

    community_size: int = 1200
    seed: int = 7
    as_of: date = field(default_factory=lambda: datetime.now(UTC).date())
    latency_seconds: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    log_level: str = "INFO"
    log_path: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class DrainReport:
    """What one drain of the work queue did."""

    batches: int = 0
    messages: int = 0
    failures: int = 0


class LocalStack:
    """Starts every part on 127.0.0.1 and offers the main job's steps; use as a context manager."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.community = SeededCommunity(
            size=self.options.community_size, seed=self.options.seed, as_of=self.options.as_of
        )
        self._exit = contextlib.ExitStack()
        self._invoke_lock = threading.Lock()
        self._saved_environ: dict[str, str] | None = None
        self._log: IO[str] | None = None
        self.functions: dict[str, ModuleType] = {}
        self.timeouts: dict[str, float] = {}

    # -- start and stop ---------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None

    def _start(self) -> None:
        endpoint_url = self._exit.enter_context(moto_server())
        self._saved_environ = dict(os.environ)
        os.environ.update(aws_environment(endpoint_url))
        self.resources: LocalResources = create_resources(endpoint_url)

        config = StandinConfig(
            token=self.resources.api_token,
            community=self.community,
            latency_seconds=self.options.latency_seconds,
            error_rate=self.options.error_rate,
            rate_limit_rate=self.options.rate_limit_rate,
            fault_seed=self.options.seed,
        )
        self.standin = self._exit.enter_context(ReturningAIStandin(config))

        if self.options.log_path is not None:
            self.options.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._exit.enter_context(self.options.log_path.open("w", encoding="utf-8"))
        self._load_functions()
        self.front = self._exit.enter_context(HttpApiFront(self._invoke_webhook))

        self.session = boto3.session.Session()
        self.sqs = self.session.client("sqs")
        self._exit.callback(self.sqs.close)
        self.table = self.session.resource("dynamodb").Table(self.resources.table_name)

    def _load_functions(self) -> None:
        """Import each function as a cold start, with exactly its own environment from the template."""
        template = load_template()
        parameters = {"PlatformBaseUrl": self.standin.base_url, **self.options.parameters}
        environments = function_environments(template, self.resources, parameters, log_level=self.options.log_level)
        shared = dict(os.environ)
        for name, logical_id in FUNCTIONS.items():
            self.timeouts[name] = float(function_properties(template, logical_id)["Timeout"])
            os.environ.clear()
            os.environ.update({**shared, **environments[name]})
            try:
                with self._function_output():
                    self.functions[name] = load_function(name)
            finally:
                os.environ.clear()
                os.environ.update(shared)

    @contextlib.contextmanager
    def _function_output(self) -> Iterator[None]:
        """Send what the functions print (structured logs, metrics) to the log file, when there is one."""
        if self._log is None:
            yield
            return
        with contextlib.redirect_stdout(self._log):
            yield
        self._log.flush()

    # -- invoking the functions as Lambda would ------------------------------------------

    def invoke(self, name: str, event: dict[str, Any], *, timeout_seconds: float | None = None) -> Any:
        """Invoke one function with an event, one invocation at a time like a single Lambda instance.

        The context counts down from the function's timeout in the template unless another is given.
        """
        timeout = self.timeouts[name] if timeout_seconds is None else timeout_seconds
        context = LocalContext(function_name=f"community-milestones-{name}", timeout_seconds=timeout)
        with self._invoke_lock, self._function_output():
            return self.functions[name].handler(event, context)

    def _invoke_webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.invoke("webhook", event)
        return result

    @property
    def webhook_url(self) -> str:
        """Where the platform would send "user joins server" deliveries."""
        return f"{self.front.base_url}{WEBHOOK_PATH}"

    def deliver(self, payload: Any, *, key: str | None = None, raw: bytes | None = None) -> httpx.Response:
        """POST a delivery to the webhook over HTTP, with the webhook key unless another `key` is given."""
        headers = {"x-api-key": self.resources.webhook_key if key is None else key, "content-type": "application/json"}
        if key == "":
            headers.pop("x-api-key")
        body = raw if raw is not None else json.dumps(payload).encode("utf-8")
        with httpx.Client(trust_env=False, timeout=30) as client:
            return client.post(self.webhook_url, content=body, headers=headers)

    def drain(self, *, max_batches: int = 10_000) -> DrainReport:
        """Hand the work queue to the worker in batches of up to ten until it is empty.

        Like Lambda's SQS event source, messages the worker reports as failed stay on the queue;
        here they become visible again at once instead of after the visibility timeout.
        """
        report = DrainReport()
        queue_url = self.resources.work_queue_url
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        while report.batches < max_batches:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return report

            event = {"Records": [sqs_record(message, queue_arn) for message in messages]}
            result = self.invoke("worker", event)
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            report.batches += 1
            report.messages += len(messages)
            report.failures += len(failed)

            done = [message for message in messages if message["MessageId"] not in failed]
            if done:
                self.sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            for message in messages:
                if message["MessageId"] in failed:
                    self.sqs.change_message_visibility(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
        return report

    def scan(self, *, timeout_seconds: float | None = None) -> dict[str, Any]:
        """Invoke the scan as EventBridge Scheduler does, with the template's input."""
        result: dict[str, Any] = self.invoke("scan", {"source": "schedule"}, timeout_seconds=timeout_seconds)
        return result

    # -- reading back -------------------------------------------------------------------

    def milestone_records(self) -> list[dict[str, Any]]:
        """Every milestone record in the table, read back from DynamoDB."""
        return self._scan_table("milestone")

    def members(self) -> list[dict[str, Any]]:
        """Every registered member in the table."""
        return self._scan_table("member")

    def _scan_table(self, entity: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "FilterExpression": "#entity = :entity",
            "ExpressionAttributeNames": {"#entity": "entity"},
        }
        query["ExpressionAttributeValues"] = {":entity": entity}
        while True:
            page = self.table.scan(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dead_letters(self) -> list[dict[str, Any]]:
        """The messages waiting in the work dead-letter queue, with their attributes; they stay there, visible."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.resources.work_dead_letter_queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not batch:
                break
            messages.extend(batch)  # type: ignore[arg-type]
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.resources.work_dead_letter_queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )
        return messages

    def queue_depth(self, queue_url: str) -> int:
        """Messages in a queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def function_environments(
    template: dict[str, Any], resources: LocalResources, parameters: dict[str, str], *, log_level: str = "INFO"
) -> dict[str, dict[str, str]]:
    """Each function's environment as the template declares it, resolved against the local resources."""
    environments: dict[str, dict[str, str]] = {}
    for function, logical_id in FUNCTIONS.items():
        variables = resolve_environment(function_environment(template, logical_id), resources, parameters)
        environment = {name: local_path(value, name_of_function=function) for name, value in variables.items()}
        environment["POWERTOOLS_LOG_LEVEL"] = log_level
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        environments[function] = environment
    return environments


def local_path(value: str, *, name_of_function: str) -> str:
    """A path inside the deployed function's package (/var/task) as the same file in its folder here."""
    if not value.startswith(LAMBDA_TASK_ROOT):
        return value
    return str(FUNCTIONS_DIR / name_of_function / value.removeprefix(LAMBDA_TASK_ROOT))


def sqs_record(message: Any, queue_arn: str) -> dict[str, Any]:
    """The SQS event record Lambda builds for a received message."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", "local"),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
    }
