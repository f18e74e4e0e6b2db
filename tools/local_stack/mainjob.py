"""The main job, end to end on the local stack, with every step checked and reported."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from community_milestones.clock import utc_now
from community_milestones.members import MemberRef
from community_milestones.storage import MemberStore
from local_stack.community import CommunityMember
from local_stack.stack import LocalStack

COMMUNITY_ID = "local-community"
Output = Callable[[str], None]


@dataclass
class MainJobReport:
    """What the main job did, and what went wrong if anything did."""

    deliveries_accepted: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    members_registered: int = 0
    scan: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    records_by_trigger: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    stats_requests: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when records were written and every check held."""
        return bool(self.records) and not self.problems


def pick_members(stack: LocalStack, joins: int, known: int) -> tuple[list[CommunityMember], list[CommunityMember]]:
    """Members who join during the run, and members who registered earlier, spread over the community."""
    members = stack.community.members()
    step = max(1, len(members) // max(1, joins + known))
    chosen = members[::step][: joins + known]
    return chosen[:joins], chosen[joins:]


def run_main_job(stack: LocalStack, *, joins: int = 10, known: int = 50, out: Output = print) -> MainJobReport:
    """Deliver joins over HTTP, drain the queue, run one scan, drain again and read the records back."""
    report = MainJobReport()
    joining, earlier = pick_members(stack, joins, known)
    out(f"webhook (HTTP API front)  {stack.webhook_url}")
    out(f"Returning.AI stand-in     {stack.standin.base_url} ({stack.community.size} members)")
    out(f"AWS (moto server)         {stack.resources.endpoint_url}")

    out(f"\n1. {len(joining)} 'user joins server' deliveries, signed with the webhook key, over HTTP")
    for member in joining:
        response = stack.deliver(_join_payload(member))
        if response.status_code == 202:
            report.deliveries_accepted += 1
        else:
            report.problems.append(f"delivery for {member.user_id} answered {response.status_code}: {response.text}")
    _check_refusals(stack, report, out)

    out(f"2. {len(earlier)} members registered by earlier runs")
    members = MemberStore(stack.table)
    for member in earlier:
        members.register(MemberRef(identifier=member.user_id), now=utc_now(), event_type="user-joins-server")
    report.members_registered = len(stack.members())

    drained = stack.drain()
    out(f"3. worker drained the queue: {drained.messages} messages in {drained.batches} batches")

    report.scan = stack.scan()
    out(f"4. scheduled scan: {report.scan['due']} due, {report.scan['enqueued']} enqueued")
    drained = stack.drain()
    out(f"   worker drained the queue: {drained.messages} messages in {drained.batches} batches")

    before = len(stack.milestone_records())
    if joining:
        stack.deliver(_join_payload(joining[0]))
        stack.drain()
    after = len(stack.milestone_records())
    out(f"5. a repeated delivery for {joining[0].user_id if joining else '-'}: {after - before} new records")
    if after != before:
        report.problems.append(f"a repeated delivery wrote {after - before} records")

    report.records = sorted(
        stack.milestone_records(), key=lambda item: (str(item["member_key"]), str(item["milestone_id"]))
    )
    report.records_by_trigger = dict(Counter(str(item["trigger"]) for item in report.records))
    report.dead_letters = len(stack.dead_letters())
    report.stats_requests = stack.standin.request_count
    if report.dead_letters and not (stack.options.error_rate or stack.options.rate_limit_rate):
        report.problems.append(f"{report.dead_letters} evaluations were dead-lettered")
    return report


def _join_payload(member: CommunityMember) -> dict[str, Any]:
    return {"userId": member.user_id, "communityId": COMMUNITY_ID, "joinedAt": utc_now().isoformat()}


def _check_refusals(stack: LocalStack, report: MainJobReport, out: Output) -> None:
    """A wrong key and a body without a user must be refused and leave nothing behind."""
    depth = stack.queue_depth(stack.resources.work_queue_url)
    cases = {
        "wrong key": (stack.deliver({"userId": "188001"}, key="not-the-webhook-key"), 401),
        "no user in body": (stack.deliver({"communityId": COMMUNITY_ID}), 400),
        "not JSON": (stack.deliver(None, raw=b"{not json"), 400),
    }
    for name, (response, expected) in cases.items():
        report.refusals[name] = response.status_code
        if response.status_code != expected:
            report.problems.append(f"{name}: expected {expected}, got {response.status_code}")
    if stack.queue_depth(stack.resources.work_queue_url) != depth:
        report.problems.append("a refused delivery enqueued work")
    refused = ", ".join(f"{name} -> {status}" for name, status in report.refusals.items())
    out(f"   refused as expected: {refused}")


def render_records(records: list[dict[str, Any]], *, limit: int) -> str:
    """The records as a plain-text table."""
    columns = ("member", "milestone", "value", "threshold", "trigger", "reached_at")
    rows = [
        (
            str(item["member_key"]),
            str(item["milestone_id"]),
            str(item["value"]),
            str(item["threshold"]),
            str(item["trigger"]),
            str(item["reached_at"])[:19],
        )
        for item in records[:limit]
    ]
    widths = [
        max(len(column), *(len(row[i]) for row in rows)) if rows else len(column) for i, column in enumerate(columns)
    ]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    if len(records) > limit:
        lines.append(f"... and {len(records) - limit} more")
    return "\n".join(lines)


def render_summary(report: MainJobReport) -> str:
    """The report's counts as JSON, for people and scripts alike."""
    summary = {
        "deliveries_accepted": report.deliveries_accepted,
        "refusals": report.refusals,
        "members_registered": report.members_registered,
        "scan": report.scan,
        "milestone_records": len(report.records),
        "records_by_trigger": report.records_by_trigger,
        "milestones": dict(Counter(str(item["milestone_id"]) for item in report.records)),
        "dead_letters": report.dead_letters,
        "stats_requests": report.stats_requests,
        "problems": report.problems,
    }
    return json.dumps(summary, indent=2, sort_keys=True)
