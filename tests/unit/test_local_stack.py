"""The local stack's own parts: Lambda paths, HTTP API events, SQS records and environments."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from local_stack.aws import LocalResources, resolve_environment
from local_stack.front import http_api_event
from local_stack.functions import FUNCTIONS_DIR
from local_stack.stack import function_environments, local_path, sqs_record
from local_stack.template import function_environment, load_template

RESOURCES = LocalResources(
    endpoint_url="http://127.0.0.1:1",
    table_name="table",
    work_queue_url="http://127.0.0.1:1/123456789012/work",
    work_dead_letter_queue_url="http://127.0.0.1:1/123456789012/work-dlq",
    scan_dead_letter_queue_url="http://127.0.0.1:1/123456789012/scan-dlq",
    api_token_secret_arn="arn:api",
    webhook_key_secret_arn="arn:webhook",
    api_token="token",
    webhook_key="key",
)


def test_a_path_in_the_lambda_package_maps_to_the_function_folder() -> None:
    # GIVEN a worker setting that points into the deployed package, as the README's rules recipe does
    # WHEN the local stack resolves it, THEN it points at the same file in functions/worker
    assert local_path("/var/task/rules.yaml", name_of_function="worker") == str(FUNCTIONS_DIR / "worker" / "rules.yaml")
    assert local_path("/opt/other.yaml", name_of_function="worker") == "/opt/other.yaml"


def test_function_environments_resolve_against_local_resources() -> None:
    # GIVEN the worker's environment as the template declares it
    variables = function_environment(load_template(), "WorkerFunction")

    # WHEN it is resolved against local resources and a stand-in base URL
    resolved = resolve_environment(variables, RESOURCES, {"PlatformBaseUrl": "http://127.0.0.1:2/apis/v1"})

    # THEN every reference has its local value and parameters keep their defaults unless given
    assert resolved["TABLE_NAME"] == "table"
    assert resolved["DEAD_LETTER_QUEUE_URL"] == RESOURCES.work_dead_letter_queue_url
    assert resolved["API_TOKEN_SECRET_ARN"] == "arn:api"
    assert resolved["PLATFORM_BASE_URL"] == "http://127.0.0.1:2/apis/v1"
    assert resolved["STATS_WINDOW_DAYS"] == "30"


def test_an_unresolvable_reference_is_refused() -> None:
    # GIVEN a variable referring to something with no local counterpart
    # WHEN it is resolved, THEN the local stack says which
    with pytest.raises(ValueError, match="UNKNOWN"):
        resolve_environment({"UNKNOWN": {"Fn::GetAtt": ["Thing", "Arn"]}}, RESOURCES, {})


def test_http_api_event_carries_a_binary_body_as_base64() -> None:
    # GIVEN a request whose body is not UTF-8
    body = b"\xff\xfe"

    # WHEN the front turns it into an HTTP API event
    event: dict[str, Any] = http_api_event(
        "POST", "/webhooks/user-joins-server?a=1", {"X-Api-Key": "k"}, body, "127.0.0.1"
    )

    # THEN it is the payload-format 2.0 shape, with the body base64-encoded and header names in lower case
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/user-joins-server"
    assert event["rawQueryString"] == "a=1"
    assert event["headers"] == {"x-api-key": "k"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_sqs_record_has_the_shape_lambda_gives_the_worker() -> None:
    # GIVEN a message as SQS returns it
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "3"},
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}},
    }

    # WHEN it becomes an event record
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:work")

    # THEN the worker sees its id, body, receive count and attributes
    assert record["messageId"] == "m1"
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["messageAttributes"]["a"]["stringValue"] == "v"
    assert record["eventSource"] == "aws:sqs"


def test_the_readme_rules_recipe_points_the_local_worker_at_its_folder() -> None:
    # GIVEN the template with RULES_FILE set for the worker as the README says
    template = load_template()
    template["Resources"]["WorkerFunction"]["Properties"]["Environment"]["Variables"]["RULES_FILE"] = (
        "/var/task/rules.yaml"
    )

    # WHEN the local stack builds the functions' environments
    environments = function_environments(template, RESOURCES, {"PlatformBaseUrl": "http://127.0.0.1:2/apis/v1"})

    # THEN the worker reads the file from functions/worker, and each function gets only its own variables
    assert environments["worker"]["RULES_FILE"] == str(FUNCTIONS_DIR / "worker" / "rules.yaml")
    assert "RULES_FILE" not in environments["scan"]
    assert "WEBHOOK_KEY_SECRET_ARN" not in environments["worker"]
    assert environments["webhook"]["WEBHOOK_KEY_SECRET_ARN"] == "arn:webhook"
