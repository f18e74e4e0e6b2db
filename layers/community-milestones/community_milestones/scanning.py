"""Scheduled scans: find the members due for re-evaluation and fan them out to the work queue."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from community_milestones.clock import Clock, utc_now
from community_milestones.members import EvaluationRequest
from community_milestones.queueing import WorkQueue
from community_milestones.storage import DueMember, MemberStore
from community_milestones.storage.keys import SCAN_SHARDS, shard_name

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ScanSummary:
    """Counts of one scan run."""

    due: int = 0
    enqueued: int = 0
    claimed_elsewhere: int = 0
    released: int = 0
    complete: bool = True


class MemberScan:
    """Claims due members shard by shard and enqueues one evaluation for each.

    A claim moves the member's next scan one period ahead with a conditional write, so
    overlapping runs never enqueue the same member twice in a period. A run that nears its
    deadline stops between pages; the members it did not reach stay due for the next run.
    """

    def __init__(
        self, *, members: MemberStore, queue: WorkQueue, period: timedelta, page_size: int = 100, clock: Clock = utc_now
    ) -> None:
        self._members = members
        self._queue = queue
        self._period = period
        self._page_size = page_size
        self._clock = clock

    def run(self, *, correlation_id: str, time_left_ms: Callable[[], int], safety_margin_ms: int) -> ScanSummary:
        """Scan every shard while more than `safety_margin_ms` remain."""
        summary = ScanSummary()

        def out_of_time() -> bool:
            if time_left_ms() > safety_margin_ms:
                return False
            summary.complete = False
            return True

        for number in range(SCAN_SHARDS):
            start_key = None
            while True:
                if out_of_time():
                    logger.info("scan stopping before its deadline", extra={"shard": number})
                    return summary
                due, start_key = self._members.due(
                    shard_name(number), now=self._clock(), limit=self._page_size, start_key=start_key
                )
                self._enqueue(due, correlation_id, summary, out_of_time)
                if not start_key:
                    break
        return summary

    def _enqueue(
        self, due: list[DueMember], correlation_id: str, summary: ScanSummary, out_of_time: Callable[[], bool]
    ) -> None:
        now = self._clock()
        next_scan_at = int((now + self._period).timestamp())
        claimed: list[DueMember] = []
        try:
            for member in due:
                # Claims stop at the deadline too: what is claimed must still be sent in this run.
                if out_of_time():
                    break
                summary.due += 1
                if self._members.claim(member, next_scan_at=next_scan_at, now=now, claimant=correlation_id):
                    claimed.append(member)
                else:
                    summary.claimed_elsewhere += 1
        except Exception:
            # Claimed members would otherwise wait a whole period without being enqueued.
            self._release(claimed, next_scan_at, summary)
            raise

        requests = [
            EvaluationRequest(
                member=member.member,
                trigger="scan",
                requested_at=now,
                correlation_id=correlation_id,
                community_id=member.community_id,
            )
            for member in claimed
        ]
        refused = {request.member.key for request in self._queue.send_batch(requests)}
        self._release([member for member in claimed if member.member.key in refused], next_scan_at, summary)
        summary.enqueued += len(claimed) - len(refused)

    def _release(self, members: list[DueMember], next_scan_at: int, summary: ScanSummary) -> None:
        """Make members due again; one failed release does not keep the others claimed."""
        for member in members:
            try:
                self._members.release(member, claimed_next_scan_at=next_scan_at)
            except Exception:
                logger.exception("could not release a claimed member", extra={"member_key": member.member.key})
                continue
            summary.released += 1
