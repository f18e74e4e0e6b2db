"""End to end over real sockets: moto server, the Returning.AI stand-in, the HTTP front and the three functions."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from community_milestones.members import EvaluationRequest, MemberRef
from community_milestones.returning_ai.models import ActivityStats
from community_milestones.rules import evaluate, load_rules
from local_stack.community import CommunityMember
from local_stack.mainjob import pick_members, run_main_job
from local_stack.stack import LocalStack, StackOptions
from local_stack.template import load_template, resource

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 30)


def expected_milestones(stack: LocalStack, members: list[CommunityMember]) -> set[tuple[str, str]]:
    """(member key, milestone id) pairs the default rules give for the stand-in's activity."""
    rules = load_rules()
    expected: set[tuple[str, str]] = set()
    for member in members:
        stats = ActivityStats.model_validate(stack.community.stats(member, 30))
        key = MemberRef(identifier=member.user_id).key
        expected.update((key, reached.milestone_id) for reached in evaluate(rules, stats))
    return expected


def recorded(stack: LocalStack) -> set[tuple[str, str]]:
    return {(str(item["member_key"]), str(item["milestone_id"])) for item in stack.milestone_records()}


def test_main_job_writes_each_reached_milestone_exactly_once() -> None:
    # GIVEN the local stack with a seeded community
    with LocalStack(StackOptions(community_size=400, as_of=AS_OF)) as stack:
        joining, earlier = pick_members(stack, 6, 24)

        # WHEN the main job runs: joins over HTTP, a drain, a scheduled scan, another drain, a repeated delivery
        report = run_main_job(stack, joins=6, known=24, out=lambda _line: None)

        # THEN every check of the job held and records were written by both triggers
        assert report.problems == []
        assert report.deliveries_accepted == 6
        assert report.refusals == {"wrong key": 401, "no user in body": 400, "not JSON": 400}
        assert report.scan["due"] == 30
        assert report.scan["enqueued"] == 30
        assert set(report.records_by_trigger) == {"webhook", "scan"}

        # AND the records read back from DynamoDB are exactly what the rules give for the platform's stats
        assert recorded(stack) == expected_milestones(stack, joining + earlier)
        assert len(report.records) == len(recorded(stack))

        # AND each record carries the member, the stats that reached it and its trigger
        record = next(item for item in report.records if item["trigger"] == "webhook")
        assert record["identifier_type"] == "userId"
        assert int(record["value"]) >= int(record["threshold"])
        assert set(record["totals"]) == {"messages", "replies", "reactions", "socials"}
        assert record["window"]["end_date"] == AS_OF.isoformat()
        assert report.dead_letters == 0


def test_refused_deliveries_leave_no_trace() -> None:
    # GIVEN the local stack
    with LocalStack(StackOptions(community_size=50, as_of=AS_OF)) as stack:
        # WHEN deliveries with a wrong key, no key, no user and a broken body arrive
        statuses = [
            stack.deliver({"userId": "188001"}, key="wrong").status_code,
            stack.deliver({"userId": "188001"}, key="").status_code,
            stack.deliver({"communityId": "c"}).status_code,
            stack.deliver(None, raw=b"\xff\xfe").status_code,
            stack.deliver([1, 2, 3]).status_code,
        ]

        # THEN each gets a 4xx and nothing is registered or enqueued
        assert statuses == [401, 401, 400, 400, 400]
        assert stack.members() == []
        assert stack.queue_depth(stack.resources.work_queue_url) == 0


def test_a_repeated_key_header_is_refused() -> None:
    # GIVEN the local stack, whose front joins repeated headers as API Gateway does
    with LocalStack(StackOptions(community_size=50, as_of=AS_OF)) as stack:
        url = urlsplit(stack.webhook_url)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)

        # WHEN a delivery carries a wrong key, then the right one, in two x-api-key headers
        connection.putrequest("POST", url.path)
        connection.putheader("x-api-key", "wrong-key")
        connection.putheader("x-api-key", stack.resources.webhook_key)
        body = b'{"userId": "188001"}'
        connection.putheader("content-length", str(len(body)))
        connection.endheaders(body)
        status = connection.getresponse().status
        connection.close()

        # THEN it is refused and nothing is registered
        assert status == 401
        assert stack.members() == []


def test_rotated_api_token_is_picked_up_without_a_restart() -> None:
    # GIVEN a worker whose API token secret holds a key the platform refuses
    with LocalStack(StackOptions(community_size=50, as_of=AS_OF)) as stack:
        secrets = boto3.client("secretsmanager")
        secrets.put_secret_value(SecretId=stack.resources.api_token_secret_arn, SecretString="revoked-key")
        member = stack.community.members()[3]

        # WHEN a member joins and the worker runs with the refused key
        assert stack.deliver({"userId": member.user_id}).status_code == 202
        first = stack.drain(max_batches=1)

        # THEN the evaluation fails and stays on the queue for a retry
        assert first.failures == 1
        assert stack.queue_depth(stack.resources.work_queue_url) == 1

        # WHEN the operator rotates the secret to the valid key, with no restart
        secrets.put_secret_value(SecretId=stack.resources.api_token_secret_arn, SecretString=stack.resources.api_token)
        second = stack.drain()

        # THEN the retry reads the new key and writes the member's milestones
        assert second.failures == 0
        assert recorded(stack) == expected_milestones(stack, [member])
        assert stack.dead_letters() == []


def test_work_that_keeps_failing_is_dead_lettered_with_its_reason() -> None:
    # GIVEN a key the platform keeps refusing
    with LocalStack(StackOptions(community_size=50, as_of=AS_OF)) as stack:
        boto3.client("secretsmanager").put_secret_value(
            SecretId=stack.resources.api_token_secret_arn, SecretString="revoked-key"
        )

        # WHEN a member joins and the worker exhausts its attempts
        assert stack.deliver({"userId": stack.community.members()[0].user_id}).status_code == 202
        report = stack.drain()

        # THEN the message was tried as often as the queue allows, then parked in the DLQ with the reason
        assert report.messages == int(resource(load_template(), "WorkQueue")["RedrivePolicy"]["maxReceiveCount"])
        letters = stack.dead_letters()
        assert len(letters) == 1
        attributes = letters[0]["MessageAttributes"]
        assert attributes["failure_kind"]["StringValue"] == "PlatformAuthError"
        assert "API key was refused" in attributes["failure_reason"]["StringValue"]
        assert "revoked-key" not in attributes["failure_reason"]["StringValue"]
        assert stack.queue_depth(stack.resources.work_queue_url) == 0


def test_platform_faults_lose_nothing() -> None:
    # GIVEN a platform that fails a third of the stats calls with 500 or 429
    options = StackOptions(community_size=300, as_of=AS_OF, error_rate=0.2, rate_limit_rate=0.1, seed=11)
    with LocalStack(options) as stack:
        members = stack.community.members()[::10]

        # WHEN those members join and the worker drains the queue, retrying failures
        for member in members:
            assert stack.deliver({"userId": member.user_id}).status_code == 202
        report = stack.drain()

        # THEN every member is either fully evaluated or dead-lettered with a reason: nothing is lost
        letters = stack.dead_letters()
        assert all(letter["MessageAttributes"]["failure_reason"]["StringValue"] for letter in letters)
        parked = {EvaluationRequest.model_validate_json(letter["Body"]).member.key for letter in letters}
        evaluated = [member for member in members if MemberRef(identifier=member.user_id).key not in parked]
        assert report.failures > 0
        assert len(evaluated) + len(parked) == len(members)
        assert {pair for pair in recorded(stack) if pair[0] not in parked} == expected_milestones(stack, evaluated)
        assert stack.queue_depth(stack.resources.work_queue_url) == 0


def test_make_run_command_exits_zero_and_prints_records(tmp_path: Path) -> None:
    # GIVEN the command that `make run` runs, with a small community
    command = [sys.executable, "-m", "local_stack", "run", "--community-size", "200", "--joins", "3"]
    command += ["--known-members", "5", "--log-file", str(tmp_path / "functions.log")]

    # WHEN it runs as its own process
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, cwd=REPO, env=dict(os.environ), check=False
    )

    # THEN it succeeds, prints the records table and keeps the function logs out of the way
    assert result.returncode == 0, result.stderr
    assert "milestone records read back from DynamoDB" in result.stdout
    assert "main job succeeded" in result.stdout
    assert (tmp_path / "functions.log").stat().st_size > 0
