"""Figures from the local stack: webhook latency, worker throughput and scan cost, measured in one run.

These are local figures (moto and the stand-in share the machine with the functions); they show
where time goes and how it grows with the community, not what Lambda will measure.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from community_milestones.clock import utc_now
from community_milestones.members import MemberRef
from community_milestones.storage import MemberStore
from local_stack.stack import LocalStack, StackOptions


@dataclass(frozen=True)
class BenchFigures:
    """The figures of one benchmark run."""

    deliveries: int
    delivery_p50_ms: float
    delivery_p95_ms: float
    handler_p50_ms: float
    members_evaluated: int
    worker_seconds: float
    stats_requests: int
    scanned_members: int
    scan_seconds: float
    records: int
    peak_rss_mib: float

    def lines(self) -> list[str]:
        """The figures as aligned lines of text."""
        per_member_ms = 1000 * self.worker_seconds / max(1, self.members_evaluated)
        per_scanned_ms = 1000 * self.scan_seconds / max(1, self.scanned_members)
        return [
            f"webhook deliveries               {self.deliveries}",
            f"  HTTP round trip p50 / p95      {self.delivery_p50_ms:.1f} ms / {self.delivery_p95_ms:.1f} ms",
            f"  handler alone p50              {self.handler_p50_ms:.1f} ms",
            f"worker evaluations               {self.members_evaluated} in {self.worker_seconds:.2f} s "
            "(joined members are evaluated again by the scan)",
            f"  per member                     {per_member_ms:.1f} ms "
            f"({self.members_evaluated / max(self.worker_seconds, 1e-9):.0f} members/s on one instance)",
            f"  stats calls per member         {self.stats_requests / max(1, self.members_evaluated):.2f}",
            f"scan                             {self.scanned_members} members in {self.scan_seconds:.2f} s "
            f"({per_scanned_ms:.1f} ms per member)",
            f"milestone records                {self.records} "
            f"({self.records / max(1, self.members_evaluated):.2f} per member)",
            f"peak resident memory             {self.peak_rss_mib:.1f} MiB (the whole local stack in one process)",
        ]


def run_bench(*, deliveries: int = 200, registered: int = 800, community_size: int = 1200) -> BenchFigures:
    """Deliver joins, drain, register more members, scan and drain, timing each step."""
    options = StackOptions(community_size=community_size, log_path=Path(".local-stack") / "bench.log")
    with LocalStack(options) as stack:
        members = stack.community.members()
        round_trips: list[float] = []
        for member in members[:deliveries]:
            started = time.perf_counter()
            response = stack.deliver({"userId": member.user_id})
            round_trips.append((time.perf_counter() - started) * 1000)
            if response.status_code != 202:
                raise RuntimeError(f"delivery answered {response.status_code}: {response.text}")
        handler_ms = list(stack.front.latencies_ms)

        started = time.perf_counter()
        drained = stack.drain()
        worker_seconds = time.perf_counter() - started

        store = MemberStore(stack.table)
        for member in members[deliveries : deliveries + registered]:
            store.register(MemberRef(identifier=member.user_id), now=utc_now(), event_type="bench")
        started = time.perf_counter()
        summary = stack.scan()
        scan_seconds = time.perf_counter() - started
        started = time.perf_counter()
        drained_after_scan = stack.drain()
        worker_seconds += time.perf_counter() - started

        records = len(stack.milestone_records())
        stats_requests = stack.standin.request_count
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    return BenchFigures(
        deliveries=deliveries,
        delivery_p50_ms=statistics.median(round_trips),
        delivery_p95_ms=statistics.quantiles(round_trips, n=20)[-1] if len(round_trips) > 1 else round_trips[0],
        handler_p50_ms=statistics.median(handler_ms),
        members_evaluated=drained.messages + drained_after_scan.messages,
        worker_seconds=worker_seconds,
        stats_requests=stats_requests,
        scanned_members=int(summary["enqueued"]),
        scan_seconds=scan_seconds,
        records=records,
        peak_rss_mib=peak_kib / 1024,
    )
