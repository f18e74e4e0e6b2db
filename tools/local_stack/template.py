"""Read the SAM template and derive local resources from its own definitions.

The local stack and the tests build their DynamoDB table and SQS queues from `template.yaml`
instead of restating them, so the infrastructure and what runs locally cannot drift apart.

Example:

    template = load_template()
    dynamodb.create_table(**table_create_kwargs(template, "milestones"))
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

__all__ = [
    "TEMPLATE_PATH",
    "CloudFormationLoader",
    "function_environment",
    "function_properties",
    "load_template",
    "queue_attributes",
    "resource",
    "table_create_kwargs",
]

TEMPLATE_PATH: Path = Path(__file__).resolve().parents[2] / "template.yaml"

# Short-form tags whose long form is "Fn::<Name>"; Ref and Condition keep their bare names.
_FUNCTION_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)

# Queue properties that CreateQueue takes as attributes of the same name.
_QUEUE_ATTRIBUTES: tuple["QueueAttributeNameType", ...] = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)

# The keys of a CloudFormation global secondary index that CreateTable also accepts.
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection")


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that reads CloudFormation short-form tags as their long-form mappings."""


def _construct_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node for tag {node.tag}", node.start_mark)


def _function_constructor(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _construct_value(loader, node)}

    return construct


def _construct_get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_value(loader, node)

    # The short form "Resource.Attribute" splits at the first dot: attribute names may contain dots.
    if isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::GetAtt": value}


CloudFormationLoader.add_constructor("!Ref", _function_constructor("Ref"))
CloudFormationLoader.add_constructor("!Condition", _function_constructor("Condition"))
CloudFormationLoader.add_constructor("!GetAtt", _construct_get_att)
for _name in _FUNCTION_TAGS:
    CloudFormationLoader.add_constructor(f"!{_name}", _function_constructor(f"Fn::{_name}"))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Load a CloudFormation or SAM template, with short-form tags turned into long-form mappings.

    Parameters:
        path: the template file; the repository's `template.yaml` by default.

    Returns:
        The template as plain dictionaries, e.g. `!Ref WorkQueue` becomes `{"Ref": "WorkQueue"}`.
    """
    with path.open(encoding="utf-8") as stream:
        loader = CloudFormationLoader(stream)
        try:
            template = loader.get_single_data()
        finally:
            loader.dispose()

    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError(f"{path} is not a CloudFormation template: it has no Resources section")
    return template


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Return the Properties of the resource `logical_id`.

    Raises:
        KeyError: the template has no resource of that name.
    """
    resources: dict[str, Any] = template["Resources"]
    if logical_id not in resources:
        known = ", ".join(sorted(resources))
        raise KeyError(f"template has no resource {logical_id!r}; its resources are: {known}")

    properties: dict[str, Any] = resources[logical_id].get("Properties", {})
    return properties


def function_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Return a function's effective Properties: `Globals.Function` overridden by the function's own.

    Environment variables are merged one by one, the way SAM merges them.
    """
    global_properties: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    merged = copy.deepcopy(global_properties)
    merged.update(copy.deepcopy(resource(template, logical_id)))

    merged["Environment"] = {"Variables": function_environment(template, logical_id)}
    return merged


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Return a function's environment variables: the Globals' ones, overridden by the function's own.

    Values stay as the template writes them: a reference remains `{"Ref": ...}`.
    """
    global_properties: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    global_variables: dict[str, Any] = global_properties.get("Environment", {}).get("Variables", {})
    own_variables: dict[str, Any] = resource(template, logical_id).get("Environment", {}).get("Variables", {})

    return copy.deepcopy({**global_variables, **own_variables})


def table_create_kwargs(
    template: dict[str, Any], table_name: str, logical_id: str = "MilestonesTable"
) -> dict[str, Any]:
    """Build the keyword arguments of a DynamoDB `create_table` call from the table's definition.

    Parameters:
        template: a template read by `load_template`.
        table_name: the name to give the table (CloudFormation generates one when deployed).
        logical_id: the table's resource in the template.
    """
    properties = resource(template, logical_id)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": copy.deepcopy(properties["AttributeDefinitions"]),
        "KeySchema": copy.deepcopy(properties["KeySchema"]),
        "BillingMode": _literal(properties.get("BillingMode", "PROVISIONED"), f"{logical_id}.BillingMode"),
    }

    indexes = properties.get("GlobalSecondaryIndexes")
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {key: copy.deepcopy(index[key]) for key in _INDEX_KEYS if key in index} for index in indexes
        ]

    stream = properties.get("StreamSpecification")
    if stream:
        view_type = _literal(stream["StreamViewType"], f"{logical_id}.StreamSpecification.StreamViewType")
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    return kwargs


def queue_attributes(
    template: dict[str, Any], logical_id: str, dead_letter_arn: str | None = None
) -> dict["QueueAttributeNameType", str]:
    """Build the Attributes of an SQS `create_queue` call from the queue's definition.

    Parameters:
        template: a template read by `load_template`.
        logical_id: the queue's resource in the template.
        dead_letter_arn: the ARN of the local queue standing in for the redrive target; required
            exactly when the queue has a RedrivePolicy.

    Raises:
        ValueError: `dead_letter_arn` is missing for a queue with a RedrivePolicy, or given for one without.
    """
    properties = resource(template, logical_id)
    attributes: dict[QueueAttributeNameType, str] = {
        name: _attribute_value(_literal(properties[name], f"{logical_id}.{name}"))
        for name in _QUEUE_ATTRIBUTES
        if name in properties
    }

    redrive_policy = properties.get("RedrivePolicy")
    if redrive_policy is None:
        if dead_letter_arn is not None:
            raise ValueError(f"{logical_id} has no RedrivePolicy, so it takes no dead-letter queue")
        return attributes

    if dead_letter_arn is None:
        raise ValueError(f"{logical_id} redrives to a dead-letter queue: pass dead_letter_arn")
    max_receive_count = int(_literal(redrive_policy["maxReceiveCount"], f"{logical_id}.RedrivePolicy.maxReceiveCount"))
    attributes["RedrivePolicy"] = json.dumps(
        {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
    )
    return attributes


def _attribute_value(value: Any) -> str:
    """Write a template value the way SQS attributes spell it: booleans as "true" or "false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _literal(value: Any, where: str) -> Any:
    """Return `value`, refusing an intrinsic function that only CloudFormation can resolve."""
    if isinstance(value, dict):
        raise ValueError(f"{where} must be a literal to be used locally, not {json.dumps(value)}")
    return value
