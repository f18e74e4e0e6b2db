"""Key shapes of the table, in one place."""

from __future__ import annotations

import hashlib

from community_milestones.members import MemberRef

PROFILE_SK = "PROFILE"
MILESTONE_SK_PREFIX = "MILESTONE#"
DUE_INDEX = "due-members"
SCAN_SHARDS = 16
"""Members spread over this many index partitions; changing it strands members in dropped shards."""


def member_pk(member: MemberRef) -> str:
    """The partition key of everything stored about a member."""
    return f"MEMBER#{member.key}"


def milestone_sk(milestone_id: str) -> str:
    """The sort key of one milestone record."""
    return f"{MILESTONE_SK_PREFIX}{milestone_id}"


def scan_shard(member: MemberRef) -> str:
    """The due-index partition of a member, stable across runs and processes."""
    digest = hashlib.sha256(member.key.encode("utf-8")).digest()
    return shard_name(int.from_bytes(digest[:4], "big") % SCAN_SHARDS)


def shard_name(number: int) -> str:
    """The due-index partition key of shard `number`."""
    return f"SHARD#{number:02d}"
