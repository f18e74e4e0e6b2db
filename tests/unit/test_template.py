"""The SAM template keeps the promises the design makes, and the local stack can rebuild its resources."""

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_stack.template import (
    TEMPLATE_PATH,
    function_environment,
    function_properties,
    load_template,
    queue_attributes,
    resource,
    table_create_kwargs,
)

FUNCTIONS = ("WebhookFunction", "WorkerFunction", "ScanFunction")
SAMCONFIG_PATH = TEMPLATE_PATH.with_name("samconfig.toml")
REGION = "us-east-1"


def _ref(value: Any) -> str:
    assert isinstance(value, dict), f"expected a reference, got {value!r}"
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def _events(template: dict[str, Any], function: str, event_type: str) -> list[dict[str, Any]]:
    events: dict[str, Any] = resource(template, function).get("Events", {})
    return [event["Properties"] for event in events.values() if event["Type"] == event_type]


def _policy_targets(template: dict[str, Any], function: str, policy_name: str) -> list[dict[str, Any]]:
    policies: list[Any] = resource(template, function).get("Policies", [])
    return [policy[policy_name] for policy in policies if isinstance(policy, dict) and policy_name in policy]


# ---------------------------------------------------------------------------
# Reading the template
# ---------------------------------------------------------------------------


def test_load_template_reads_short_form_tags_as_long_form(tmp_path: Path) -> None:
    # GIVEN a template written with short-form intrinsic functions
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  Thing:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      A: !Ref Other\n"
        "      B: !GetAtt Other.Arn\n"
        "      C: !Sub https://${Other}.example\n"
        "      D: !If [IsProd, !Join ['-', [a, b]], !Select [0, !Split [',', 'x,y']]]\n"
        "      E: !Equals [!Ref Env, prod]\n"
        "      F: !GetAtt [Other, Outputs.Value]\n",
        encoding="utf-8",
    )

    # WHEN it is loaded
    properties = resource(load_template(path), "Thing")

    # THEN every tag has become the long-form mapping CloudFormation documents
    assert properties["A"] == {"Ref": "Other"}
    assert properties["B"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert properties["C"] == {"Fn::Sub": "https://${Other}.example"}
    assert properties["D"] == {
        "Fn::If": ["IsProd", {"Fn::Join": ["-", ["a", "b"]]}, {"Fn::Select": [0, {"Fn::Split": [",", "x,y"]}]}]
    }
    assert properties["E"] == {"Fn::Equals": [{"Ref": "Env"}, "prod"]}
    assert properties["F"] == {"Fn::GetAtt": ["Other", "Outputs.Value"]}


def test_load_template_refuses_a_file_without_resources(tmp_path: Path) -> None:
    # GIVEN a YAML file that is not a template
    path = tmp_path / "other.yaml"
    path.write_text("name: value\n", encoding="utf-8")

    # WHEN it is loaded THEN the error names the file
    with pytest.raises(ValueError, match="no Resources section"):
        load_template(path)


def test_resource_names_the_missing_logical_id(template: dict[str, Any]) -> None:
    # GIVEN a logical id the template does not define
    # WHEN its properties are asked for THEN the error says which one is missing
    with pytest.raises(KeyError, match="NoSuchQueue"):
        resource(template, "NoSuchQueue")


def test_function_environment_merges_globals_under_the_functions_own(template: dict[str, Any]) -> None:
    # GIVEN the worker function
    # WHEN its environment is read
    environment = function_environment(template, "WorkerFunction")

    # THEN it holds the Globals' variables and its own
    assert environment["TABLE_NAME"] == {"Ref": "MilestonesTable"}
    assert environment["POWERTOOLS_SERVICE_NAME"] == "worker"


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


def test_template_defines_exactly_the_three_functions(template: dict[str, Any]) -> None:
    # GIVEN the template WHEN its functions are listed
    functions = {key for key, value in template["Resources"].items() if value["Type"] == "AWS::Serverless::Function"}

    # THEN they are the webhook, worker and scan functions
    assert functions == set(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_runs_python_312_or_newer_on_arm64(template: dict[str, Any], function: str) -> None:
    # GIVEN a function's effective properties
    properties = function_properties(template, function)

    # WHEN its runtime is parsed
    match = re.fullmatch(r"python(\d+)\.(\d+)", properties["Runtime"])

    # THEN it is Python 3.12 or newer, on Graviton, with tracing and explicit limits
    assert match is not None
    assert (int(match[1]), int(match[2])) >= (3, 12)
    assert properties["Architectures"] == ["arm64"]
    assert properties["Tracing"] == "Active"
    assert properties["MemorySize"] > 0
    assert properties["Timeout"] > 0


def test_every_function_uses_the_shared_layer(template: dict[str, Any]) -> None:
    # GIVEN the layer holding the shared domain code
    layer = template["Resources"]["CommunityMilestonesLayer"]

    # WHEN each function's layers are read
    layers = [function_properties(template, function)["Layers"] for function in FUNCTIONS]

    # THEN all three use it, and it is built for the same runtime and architecture
    assert all({"Ref": "CommunityMilestonesLayer"} in function_layers for function_layers in layers)
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "WebhookFunction",
            {"TABLE_NAME", "QUEUE_URL", "WEBHOOK_KEY_SECRET_ARN", "POWERTOOLS_SERVICE_NAME"},
        ),
        (
            "WorkerFunction",
            {
                "TABLE_NAME",
                "API_TOKEN_SECRET_ARN",
                "PLATFORM_BASE_URL",
                "STATS_WINDOW_DAYS",
                "DEAD_LETTER_QUEUE_URL",
                "MAX_RECEIVE_COUNT",
                "POWERTOOLS_SERVICE_NAME",
            },
        ),
        ("ScanFunction", {"TABLE_NAME", "QUEUE_URL", "SCAN_PERIOD_HOURS", "POWERTOOLS_SERVICE_NAME"}),
    ],
)
def test_function_receives_its_environment(template: dict[str, Any], function: str, expected: set[str]) -> None:
    # GIVEN a function WHEN its environment is read
    environment = function_environment(template, function)

    # THEN it holds every variable its handler reads, plus the Powertools settings
    assert expected <= environment.keys()
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "CommunityMilestones"
    assert environment["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_queue_urls_point_at_the_right_queues(template: dict[str, Any]) -> None:
    # GIVEN the functions that send to queues
    # WHEN their queue variables are resolved THEN producers use the work queue, and the worker its dead-letter queue
    assert _ref(function_environment(template, "WebhookFunction")["QUEUE_URL"]) == "WorkQueue"
    assert _ref(function_environment(template, "ScanFunction")["QUEUE_URL"]) == "WorkQueue"
    assert _ref(function_environment(template, "WorkerFunction")["DEAD_LETTER_QUEUE_URL"]) == "WorkDeadLetterQueue"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_has_a_log_group_with_retention(template: dict[str, Any], function: str) -> None:
    # GIVEN the template's log groups
    log_groups = [
        value["Properties"] for value in template["Resources"].values() if value["Type"] == "AWS::Logs::LogGroup"
    ]

    # WHEN the one named after the function is looked up
    own = [group for group in log_groups if group.get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}]

    # THEN it exists and expires its logs
    assert len(own) == 1
    assert own[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "secrets"),
    [("WebhookFunction", ["WebhookKeySecret"]), ("WorkerFunction", ["ApiTokenSecret"]), ("ScanFunction", [])],
)
def test_function_may_read_only_its_own_secret(template: dict[str, Any], function: str, secrets: list[str]) -> None:
    # GIVEN a function's policies and environment
    policies = resource(template, function).get("Policies", [])
    environment = function_environment(template, function)

    # WHEN the secrets they name are collected
    readable = [
        _ref(target["SecretArn"])
        for target in _policy_targets(template, function, "AWSSecretsManagerGetSecretValuePolicy")
    ]
    mentioned = sorted(_ref(value) for name, value in environment.items() if name.endswith("_SECRET_ARN"))

    # THEN they are exactly its own, and no broader policy grants more
    assert readable == secrets
    assert mentioned == secrets
    assert not [policy for policy in policies if isinstance(policy, str) and "secret" in policy.lower()]


def test_secrets_are_generated_placeholders_never_template_values(template: dict[str, Any]) -> None:
    # GIVEN the template's secrets
    secrets = {
        key: value["Properties"]
        for key, value in template["Resources"].items()
        if value["Type"] == "AWS::SecretsManager::Secret"
    }

    # WHEN their definitions are read
    # THEN each value is generated, and none is written into the template
    assert set(secrets) == {"ApiTokenSecret", "WebhookKeySecret"}
    assert all(
        "GenerateSecretString" in properties and "SecretString" not in properties for properties in secrets.values()
    )


def test_no_parameter_carries_a_token_or_key(template: dict[str, Any]) -> None:
    # GIVEN the template's parameters
    parameters: dict[str, Any] = template["Parameters"]

    # WHEN their names and echo settings are checked
    suspicious = [name for name in parameters if re.search(r"token|key|secret|password", name, re.IGNORECASE)]

    # THEN none of them is a way to pass a credential in
    assert suspicious == []
    assert not [name for name, parameter in parameters.items() if parameter.get("NoEcho")]


# ---------------------------------------------------------------------------
# Webhook API
# ---------------------------------------------------------------------------


def test_webhook_route_is_post_user_joins_server(template: dict[str, Any]) -> None:
    # GIVEN the webhook function's HTTP API events
    routes = _events(template, "WebhookFunction", "HttpApi")

    # WHEN their method and path are read
    # THEN the only route is the user-joins-server webhook on the explicit, throttled and logged API
    assert [(route["Method"], route["Path"]) for route in routes] == [("POST", "/webhooks/user-joins-server")]
    assert routes[0]["ApiId"] == {"Ref": "HttpApi"}
    api = resource(template, "HttpApi")
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurstLimit"},
    }
    assert _ref(api["AccessLogSettings"]["DestinationArn"]) == "HttpApiAccessLogGroup"


# ---------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------


def test_work_queue_visibility_is_at_least_six_times_the_worker_timeout(template: dict[str, Any]) -> None:
    # GIVEN the work queue and the function that consumes it
    queue = resource(template, "WorkQueue")
    worker = function_properties(template, "WorkerFunction")

    # WHEN their timings are compared
    # THEN a message stays hidden for at least six worker timeouts
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]


def test_work_queue_redrives_after_at_least_five_receives(template: dict[str, Any]) -> None:
    # GIVEN the work queue's redrive policy
    redrive_policy = resource(template, "WorkQueue")["RedrivePolicy"]

    # WHEN its target and count are read
    # THEN failed work lands in the dead-letter queue after five tries, a count the worker also knows
    assert _ref(redrive_policy["deadLetterTargetArn"]) == "WorkDeadLetterQueue"
    assert redrive_policy["maxReceiveCount"] >= 5
    assert function_environment(template, "WorkerFunction")["MAX_RECEIVE_COUNT"] == str(
        redrive_policy["maxReceiveCount"]
    )


def test_dead_letter_queues_keep_messages_for_fourteen_days(template: dict[str, Any]) -> None:
    # GIVEN the dead-letter queues WHEN their retention is read
    # THEN it is SQS's maximum, so nothing expires before an operator can redrive it
    for logical_id in ("WorkDeadLetterQueue", "ScanDeadLetterQueue"):
        assert resource(template, logical_id)["MessageRetentionPeriod"] == 1209600


def test_worker_reports_batch_item_failures(template: dict[str, Any]) -> None:
    # GIVEN the worker's SQS event source
    sources = _events(template, "WorkerFunction", "SQS")

    # WHEN its settings are read
    # THEN only the failed messages of a batch are retried, with bounded concurrency
    assert len(sources) == 1
    assert _ref(sources[0]["Queue"]) == "WorkQueue"
    assert sources[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sources[0]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert template["Parameters"]["WorkerMaxConcurrency"]["MinValue"] >= 2


# ---------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------


def test_scan_schedule_retries_and_keeps_failures(template: dict[str, Any]) -> None:
    # GIVEN the scan function's schedule
    schedules = _events(template, "ScanFunction", "ScheduleV2")

    # WHEN its delivery settings are read
    # THEN undeliverable and failed scans both land in the scan dead-letter queue
    assert len(schedules) == 1
    assert schedules[0]["ScheduleExpression"] == {"Ref": "ScanSchedule"}
    assert schedules[0]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert _ref(schedules[0]["DeadLetterConfig"]["Arn"]) == "ScanDeadLetterQueue"
    assert json.loads(schedules[0]["Input"]) == {"source": "schedule"}
    on_failure = resource(template, "ScanFunction")["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert _ref(on_failure["Destination"]) == "ScanDeadLetterQueue"


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------


def test_table_is_on_demand_with_stream_and_point_in_time_recovery(template: dict[str, Any]) -> None:
    # GIVEN the milestones table
    table = template["Resources"]["MilestonesTable"]
    properties = table["Properties"]

    # WHEN its settings are read
    # THEN it scales on demand, publishes new records, can be restored and survives stack deletion
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


# ---------------------------------------------------------------------------
# Outputs and deployment settings
# ---------------------------------------------------------------------------


def test_every_output_has_a_description(template: dict[str, Any]) -> None:
    # GIVEN the template's outputs
    outputs: dict[str, Any] = template["Outputs"]

    # WHEN they are listed THEN the documented ones are all there, each described
    assert {
        "WebhookUrl",
        "MilestonesTableName",
        "MilestonesTableStreamArn",
        "WorkQueueUrl",
        "WorkDeadLetterQueueUrl",
        "ScanDeadLetterQueueUrl",
        "ApiTokenSecretArn",
        "WebhookKeySecretArn",
    } <= outputs.keys()
    assert all(str(output.get("Description", "")).strip() for output in outputs.values())
    assert outputs["WebhookUrl"]["Value"]["Fn::Sub"].endswith("/webhooks/user-joins-server")


def test_samconfig_deploys_the_stack_with_known_parameters(template: dict[str, Any]) -> None:
    # GIVEN the SAM CLI configuration
    config = tomllib.loads(SAMCONFIG_PATH.read_text(encoding="utf-8"))["default"]
    deploy = config["deploy"]["parameters"]

    # WHEN its deploy settings and parameter overrides are read
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])

    # THEN it names the stack, asks before changing it, and overrides only parameters the template declares
    assert config["global"]["parameters"] == {"stack_name": "community-milestones", "region": REGION}
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    assert config["validate"]["parameters"]["lint"] is True
    assert overrides.keys() <= template["Parameters"].keys()


# ---------------------------------------------------------------------------
# Local resources built from the template
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_table_create_kwargs_build_a_working_table(template: dict[str, Any]) -> None:
    # GIVEN a table created from the template's definition
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(**table_create_kwargs(template, "milestones-test"))

    # WHEN a member is written and the due-members index is queried
    client.put_item(
        TableName="milestones-test",
        Item={
            "pk": {"S": "COMMUNITY#c1#MEMBER#m1"},
            "sk": {"S": "MEMBER"},
            "scan_shard": {"S": "3"},
            "next_scan_at": {"N": "1700000000"},
            "identifier": {"S": "m1"},
            "identifier_type": {"S": "id"},
            "community_id": {"S": "c1"},
        },
    )
    due = client.query(
        TableName="milestones-test",
        IndexName="due-members",
        KeyConditionExpression="scan_shard = :shard AND next_scan_at <= :now",
        ExpressionAttributeValues={":shard": {"S": "3"}, ":now": {"N": "1800000000"}},
    )
    description = client.describe_table(TableName="milestones-test")["Table"]

    # THEN the member is found through the index, and the table streams new images on demand
    assert [item["identifier"]["S"] for item in due["Items"]] == ["m1"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}


@pytest.mark.usefixtures("aws")
def test_queue_attributes_build_a_queue_that_redrives(template: dict[str, Any]) -> None:
    # GIVEN the work queue and its dead-letter queue created from the template's definitions
    client = boto3.client("sqs", region_name=REGION)
    dead_letter_url = client.create_queue(
        QueueName="work-dlq", Attributes=queue_attributes(template, "WorkDeadLetterQueue")
    )["QueueUrl"]
    dead_letter_arn = client.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    work_url = client.create_queue(
        QueueName="work", Attributes=queue_attributes(template, "WorkQueue", dead_letter_arn)
    )["QueueUrl"]
    max_receive_count = resource(template, "WorkQueue")["RedrivePolicy"]["maxReceiveCount"]

    # WHEN a message is received and abandoned as many times as the redrive policy allows
    client.send_message(QueueUrl=work_url, MessageBody='{"member": "m1"}')
    for _ in range(max_receive_count):
        received = client.receive_message(QueueUrl=work_url, VisibilityTimeout=0)
        assert len(received["Messages"]) == 1
    after_last_try = client.receive_message(QueueUrl=work_url, VisibilityTimeout=0)

    # THEN the next receive moves it to the dead-letter queue, and the queue keeps the template's timings
    assert after_last_try.get("Messages", []) == []
    dead_letters = client.receive_message(QueueUrl=dead_letter_url)["Messages"]
    assert [message["Body"] for message in dead_letters] == ['{"member": "m1"}']
    attributes = client.get_queue_attributes(QueueUrl=work_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(resource(template, "WorkQueue")["VisibilityTimeout"])
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == max_receive_count


def test_queue_attributes_insists_on_a_dead_letter_queue_when_the_template_has_one(template: dict[str, Any]) -> None:
    # GIVEN a queue with a redrive policy, and one without
    # WHEN their attributes are asked for with the dead-letter ARN missing, or superfluous
    # THEN each mistake is refused instead of silently building a different queue
    with pytest.raises(ValueError, match="pass dead_letter_arn"):
        queue_attributes(template, "WorkQueue")
    with pytest.raises(ValueError, match="no RedrivePolicy"):
        queue_attributes(template, "ScanDeadLetterQueue", "arn:aws:sqs:us-east-1:123456789012:other")


@pytest.mark.parametrize(
    ("function", "allowed"),
    [
        ("WebhookFunction", {"dynamodb:UpdateItem"}),
        ("WorkerFunction", {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
        ("ScanFunction", {"dynamodb:Query", "dynamodb:UpdateItem"}),
    ],
)
def test_table_access_is_only_what_each_function_does(
    template: dict[str, Any], function: str, allowed: set[str]
) -> None:
    # GIVEN a function's policies
    policies = resource(template, function).get("Policies", [])

    # WHEN its DynamoDB actions are collected
    actions = {
        action
        for policy in policies
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        for action in statement["Action"]
        if action.startswith("dynamodb:")
    }

    # THEN they are exactly what it needs: no delete, no scan, no batch writes, no broad policy templates
    assert actions == allowed
    assert not [policy for policy in policies if isinstance(policy, dict) and any("DynamoDB" in key for key in policy)]
