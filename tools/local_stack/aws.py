"""AWS on this machine: moto in server mode, with the resources that template.yaml declares."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

from local_stack.template import load_template, queue_attributes, table_create_kwargs

REGION = "us-east-1"
LOOPBACK = "127.0.0.1"

# Credentials that only moto accepts; the local stack never reaches a real AWS account.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local-stack",
    "AWS_SECRET_ACCESS_KEY": "local-stack",
    "AWS_SESSION_TOKEN": "local-stack",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass(frozen=True, slots=True)
class LocalResources:
    """Names, URLs and ARNs of the local resources, keyed like the template's logical ids."""

    endpoint_url: str
    table_name: str
    work_queue_url: str
    work_dead_letter_queue_url: str
    scan_dead_letter_queue_url: str
    api_token_secret_arn: str
    webhook_key_secret_arn: str
    api_token: str
    webhook_key: str

    def by_logical_id(self) -> dict[str, str]:
        """What a `Ref` to each template resource resolves to locally."""
        return {
            "MilestonesTable": self.table_name,
            "WorkQueue": self.work_queue_url,
            "WorkDeadLetterQueue": self.work_dead_letter_queue_url,
            "ScanDeadLetterQueue": self.scan_dead_letter_queue_url,
            "ApiTokenSecret": self.api_token_secret_arn,
            "WebhookKeySecret": self.webhook_key_secret_arn,
        }


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """Environment variables that point boto3 at the local server and nowhere else."""
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), LOOPBACK, "localhost"]))
    return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto in server mode on 127.0.0.1, on a port the OS picks; yields its endpoint URL."""
    # One line per AWS call on stderr would drown the job's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    try:
        yield endpoint_url
    finally:
        # moto keeps its state per process, not per server: clear it for the next stack.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{endpoint_url}/moto-api/reset", trust_env=False, timeout=10)
        server.stop()


def create_resources(endpoint_url: str, *, prefix: str = "community-milestones") -> LocalResources:
    """Create the table, queues and secrets of template.yaml on the server at `endpoint_url`."""
    template = load_template()
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)

    table_name = f"{prefix}-milestones"
    dynamodb.create_table(**table_create_kwargs(template, table_name))
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)

    def create_queue(logical_id: str, name: str, dead_letter_arn: str | None = None) -> tuple[str, str]:
        attributes = queue_attributes(template, logical_id, dead_letter_arn)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    dead_letter_url, dead_letter_arn = create_queue("WorkDeadLetterQueue", f"{prefix}-work-dlq")
    work_url, _ = create_queue("WorkQueue", f"{prefix}-work", dead_letter_arn)
    scan_dead_letter_url, _ = create_queue("ScanDeadLetterQueue", f"{prefix}-scan-dlq")

    api_token = secrets.token_urlsafe(32)
    webhook_key = secrets.token_urlsafe(24)
    api_token_arn = secretsmanager.create_secret(Name=f"{prefix}/api-token", SecretString=api_token)["ARN"]
    webhook_key_arn = secretsmanager.create_secret(Name=f"{prefix}/webhook-key", SecretString=webhook_key)["ARN"]

    return LocalResources(
        endpoint_url=endpoint_url,
        table_name=table_name,
        work_queue_url=work_url,
        work_dead_letter_queue_url=dead_letter_url,
        scan_dead_letter_queue_url=scan_dead_letter_url,
        api_token_secret_arn=api_token_arn,
        webhook_key_secret_arn=webhook_key_arn,
        api_token=api_token,
        webhook_key=webhook_key,
    )


def resolve_environment(
    variables: Mapping[str, Any], resources: LocalResources, parameters: Mapping[str, str]
) -> dict[str, str]:
    """Resolve a function's template environment against local resources and parameter values.

    Raises:
        ValueError: a value refers to something that has no local counterpart.
    """
    template = load_template()
    defaults = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values = {**defaults, **parameters, **resources.by_logical_id()}

    resolved: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in values:
            resolved[name] = values[value["Ref"]]
        elif isinstance(value, str | int | float | bool):
            resolved[name] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            raise ValueError(f"environment variable {name} has no local value for {value!r}")
    return resolved
