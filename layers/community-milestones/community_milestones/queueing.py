"""The work queue and its dead-letter queue."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from community_milestones.members import EvaluationRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

logger = logging.getLogger(__name__)

SQS_BATCH_LIMIT = 10
REASON_LIMIT = 1000


class WorkQueue:
    """Sends evaluation requests to the work queue."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, request: EvaluationRequest) -> str:
        """Enqueue one request; returns the SQS message id."""
        response = self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=request.model_dump_json())
        return response["MessageId"]

    def send_batch(self, requests: Sequence[EvaluationRequest]) -> list[EvaluationRequest]:
        """Enqueue requests ten at a time; returns those SQS did not accept.

        A batch call that fails outright counts its chunk and every later one as refused. Some of
        them may have reached the queue all the same (an answer lost on the way back): evaluating
        a member twice is harmless, while skipping one would cost it a whole period.
        """
        refused: list[EvaluationRequest] = []
        for start in range(0, len(requests), SQS_BATCH_LIMIT):
            chunk = requests[start : start + SQS_BATCH_LIMIT]
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(index), "MessageBody": request.model_dump_json()}
                        for index, request in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError) as exc:
                unsent = len(requests) - start
                logger.warning("work queue batch failed", extra={"error": type(exc).__name__, "unsent": unsent})
                return [*refused, *requests[start:]]
            for failure in response.get("Failed", []):
                logger.warning(
                    "work queue refused a request", extra={"code": failure.get("Code"), "entry": failure["Id"]}
                )
                refused.append(chunk[int(failure["Id"])])
        return refused


class DeadLetters:
    """Parks work that cannot succeed in the dead-letter queue, with the reason beside it."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def park(self, body: str, *, reason: str, kind: str, source_message_id: str, receive_count: int) -> None:
        """Send the original body, with the reason, kind, source message id and receive count as attributes."""
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "failure_reason": {"DataType": "String", "StringValue": sqs_text(reason)[:REASON_LIMIT] or "unknown"},
            "failure_kind": {"DataType": "String", "StringValue": kind},
            "source_message_id": {"DataType": "String", "StringValue": source_message_id},
            "receive_count": {"DataType": "Number", "StringValue": str(receive_count)},
        }
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=body, MessageAttributes=attributes)


_SQS_DISALLOWED = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_text(text: str) -> str:
    """The text with every character SQS refuses in a message replaced by `?`."""
    return _SQS_DISALLOWED.sub("?", text)
