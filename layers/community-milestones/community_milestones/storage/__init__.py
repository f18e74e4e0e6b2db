"""DynamoDB storage: registered members and milestone records share one table.

Layout (one item collection per member)::

    pk                       sk                      what
    MEMBER#userId#188055     PROFILE                 the registered member, with its scan schedule
    MEMBER#userId#188055     MILESTONE#streak-3      a milestone record, written once, never changed

The sparse index `due-members` (scan_shard, next_scan_at) holds only members: scans query it
shard by shard for the members whose next scan is due.
"""

from community_milestones.storage.members import DueMember, MemberStore
from community_milestones.storage.milestones import MilestoneRecord, MilestoneStore

__all__ = ["DueMember", "MemberStore", "MilestoneRecord", "MilestoneStore"]
