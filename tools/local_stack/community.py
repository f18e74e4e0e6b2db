"""A seeded, deterministic Returning.AI community for the local stack and end-to-end tests.

Every value is derived from ``(seed, user_id, day)`` through private ``random.Random`` instances seeded with
strings, so the same seed always yields the same members, activity and stats, across processes and runs.

Example::

    community = SeededCommunity(size=50, seed=7, as_of=date(2025, 8, 18))
    member = community.find("188005", "userId")
    data = community.stats(member, days=30)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal, TypedDict

Profile = Literal["quiet", "casual", "busy", "streaker"]
IdentifierType = Literal["userId", "email"]
DailyStatsLayout = Literal["zero_filled_newest_first", "active_only_oldest_first", "zero_filled_oldest_first"]

ACTIVITY_KEYS: Final = ("messages", "replies", "reaction", "socials")
LAYOUTS: Final[tuple[DailyStatsLayout, ...]] = (
    "zero_filled_newest_first",
    "active_only_oldest_first",
    "zero_filled_oldest_first",
)

# The community opened this many days before ``as_of``: lifetime totals and streaks stop there.
HISTORY_DAYS: Final = 365

_FIRST_NUMERIC_ID: Final = 188000
_OPAQUE_ID_SHARE: Final = 0.05
_PROFILE_SHARES: Final[tuple[tuple[Profile, float], ...]] = (
    ("quiet", 0.35),
    ("casual", 0.35),
    ("busy", 0.20),
    ("streaker", 0.10),
)


class ActivityTotals(TypedDict):
    """Counts of each action, keyed as the platform sends them (``reaction`` is singular)."""

    messages: int
    replies: int
    reaction: int
    socials: int


class DailyStat(TypedDict):
    """One day of ``daily_stats``."""

    date: str
    messages: int
    replies: int
    reaction: int
    socials: int


class StatsRange(TypedDict):
    """The inclusive window the stats cover, as ISO calendar dates."""

    start_date: str
    end_date: str


class MemberStats(TypedDict):
    """The ``data`` object of a Get User Gamification Stats response."""

    user_id: str
    range: StatsRange
    totals: ActivityTotals
    daily_stats: list[DailyStat]


@dataclass(frozen=True)
class CommunityMember:
    """A member of the seeded community."""

    user_id: str
    email: str
    profile: Profile


class SeededCommunity:
    """A community of ``size`` members whose activity is a pure function of ``seed`` and the calendar.

    Parameters:
        size: number of members.
        seed: drives ids, profiles, activity and the ``daily_stats`` layout of each member.
        as_of: the last day with activity; later days are always empty.
    """

    def __init__(self, *, size: int = 1200, seed: int = 7, as_of: date) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        if isinstance(as_of, datetime):
            raise TypeError("as_of must be a calendar date, not a datetime")

        self.size = size
        self.seed = seed
        self.as_of = as_of
        self.first_day = as_of - timedelta(days=HISTORY_DAYS - 1)
        self._members = self._build_members()
        self._by_user_id = {member.user_id: member for member in self._members}
        self._by_email = {member.email.casefold(): member for member in self._members}

    def members(self) -> list[CommunityMember]:
        """Return every member, in a stable order."""
        return list(self._members)

    def find(self, identifier: str, identifier_type: str) -> CommunityMember | None:
        """Look a member up by ``userId`` (exact, ids are opaque) or ``email`` (case-insensitive)."""
        if identifier_type == "userId":
            return self._by_user_id.get(identifier)
        if identifier_type == "email":
            return self._by_email.get(identifier.strip().casefold())
        raise ValueError(f"unknown identifier_type: {identifier_type!r}")

    def daily_activity(self, member: CommunityMember, day: date) -> dict[str, int]:
        """Return the member's counts for one calendar day (all zero outside the community's history)."""
        if not self.first_day <= day <= self.as_of:
            return dict.fromkeys(ACTIVITY_KEYS, 0)

        rng = self._rng(member.user_id, day.isoformat())
        match member.profile:
            case "quiet":
                return _draw(rng, chance=0.02, messages=(0, 2), replies=(0, 1), reaction=(1, 3), socials=(0, 1))
            case "casual":
                return _draw(rng, chance=0.25, messages=(1, 6), replies=(0, 3), reaction=(0, 5), socials=(0, 2))
            case "busy":
                return _draw(rng, chance=0.85, messages=(5, 40), replies=(2, 15), reaction=(3, 25), socials=(0, 5))
            case "streaker":
                return self._streaker_day(member, day, rng)

    def streak_length(self, member: CommunityMember) -> int:
        """Return the length of the run of active days ending at ``as_of`` (streakers only, others 0)."""
        if member.profile != "streaker":
            return 0
        return self._rng(member.user_id, "streak").randint(10, 90)

    def daily_stats_layout(self, member: CommunityMember) -> DailyStatsLayout:
        """Return how this member's ``daily_stats`` are ordered and whether empty days are listed."""
        return self._rng(member.user_id, "layout").choice(LAYOUTS)

    def stats(self, member: CommunityMember, days: int) -> MemberStats:
        """Build the ``data`` object of Get User Gamification Stats for the ``days`` days ending at ``as_of``."""
        if days < 1:
            raise ValueError("days must be at least 1")

        start = self.as_of - timedelta(days=days - 1)
        daily = [self._daily_stat(member, start + timedelta(days=offset)) for offset in range(days)]
        totals = ActivityTotals(
            messages=sum(stat["messages"] for stat in daily),
            replies=sum(stat["replies"] for stat in daily),
            reaction=sum(stat["reaction"] for stat in daily),
            socials=sum(stat["socials"] for stat in daily),
        )

        layout = self.daily_stats_layout(member)
        if layout == "zero_filled_newest_first":
            daily.reverse()
        elif layout == "active_only_oldest_first":
            daily = [stat for stat in daily if any(stat[key] for key in ACTIVITY_KEYS)]

        return MemberStats(
            user_id=member.user_id,
            range=StatsRange(start_date=start.isoformat(), end_date=self.as_of.isoformat()),
            totals=totals,
            daily_stats=daily,
        )

    def lifetime_totals(self, member: CommunityMember) -> ActivityTotals:
        """Return the member's counts summed over the whole history of the community."""
        daily = [self._daily_stat(member, self.first_day + timedelta(days=n)) for n in range(HISTORY_DAYS)]
        return ActivityTotals(
            messages=sum(stat["messages"] for stat in daily),
            replies=sum(stat["replies"] for stat in daily),
            reaction=sum(stat["reaction"] for stat in daily),
            socials=sum(stat["socials"] for stat in daily),
        )

    def active_days(self, member: CommunityMember) -> list[date]:
        """Return the days, oldest first, on which the member did anything."""
        days = (self.first_day + timedelta(days=n) for n in range(HISTORY_DAYS))
        return [day for day in days if any(self.daily_activity(member, day).values())]

    def _build_members(self) -> list[CommunityMember]:
        rng = self._rng("community")
        profiles = _profiles_for(self.size)
        rng.shuffle(profiles)

        members: list[CommunityMember] = []
        opaque_ids: set[str] = set()
        for index, profile in enumerate(profiles):
            opaque = rng.random() < _OPAQUE_ID_SHARE
            user_id = _opaque_id(rng, opaque_ids) if opaque else str(_FIRST_NUMERIC_ID + index)
            members.append(CommunityMember(user_id=user_id, email=f"member{index}@community.test", profile=profile))
        return members

    def _streaker_day(self, member: CommunityMember, day: date, rng: random.Random) -> dict[str, int]:
        days_before_as_of = (self.as_of - day).days
        streak = self.streak_length(member)
        if days_before_as_of < streak:
            chance = 1.0
        elif days_before_as_of == streak:
            # The day before the streak is empty, so the streak has exactly ``streak_length`` days.
            chance = 0.0
        else:
            chance = 0.5
        return _draw(rng, chance=chance, messages=(1, 15), replies=(0, 6), reaction=(0, 10), socials=(0, 3))

    def _daily_stat(self, member: CommunityMember, day: date) -> DailyStat:
        counts = self.daily_activity(member, day)
        return DailyStat(
            date=day.isoformat(),
            messages=counts["messages"],
            replies=counts["replies"],
            reaction=counts["reaction"],
            socials=counts["socials"],
        )

    def _rng(self, *parts: str) -> random.Random:
        # String seeds are hashed with SHA-512 by ``random``, so they do not depend on PYTHONHASHSEED.
        return random.Random(":".join((str(self.seed), *parts)))


def _profiles_for(size: int) -> list[Profile]:
    profiles: list[Profile] = []
    for profile, share in _PROFILE_SHARES[1:]:
        profiles.extend([profile] * round(size * share))
    quiet: list[Profile] = ["quiet"] * max(size - len(profiles), 0)
    return (quiet + profiles)[:size]


def _opaque_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        candidate = f"{rng.getrandbits(96):024x}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _draw(
    rng: random.Random,
    *,
    chance: float,
    messages: tuple[int, int],
    replies: tuple[int, int],
    reaction: tuple[int, int],
    socials: tuple[int, int],
) -> dict[str, int]:
    if rng.random() >= chance:
        return dict.fromkeys(ACTIVITY_KEYS, 0)
    return {
        "messages": rng.randint(*messages),
        "replies": rng.randint(*replies),
        "reaction": rng.randint(*reaction),
        "socials": rng.randint(*socials),
    }
