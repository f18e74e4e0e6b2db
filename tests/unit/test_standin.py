"""The Returning.AI stand-in over real sockets on 127.0.0.1: contract shape, determinism, errors and faults."""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from local_stack.community import ACTIVITY_KEYS, LAYOUTS, CommunityMember, SeededCommunity
from local_stack.standin import ReturningAIStandin, StandinConfig

TOKEN = "local-integration-key"
AS_OF = date(2025, 8, 18)
STATS = "/users/activity/stats"
INFO = "/users/info"

# The 200 example of the seed page, verbatim: the contract's ground truth.
SEED_EXAMPLE = """
{
    "status": "success",
    "message": "User gamification stats fetched successfully",
    "data": {
        "user_id": "188055",
        "range": {
            "start_date": "2025-08-18",
            "end_date": "2025-08-18"
        },
        "totals": {
            "messages": 0,
            "replies": 1,
            "reaction": 0,
            "socials": 0
        },
        "daily_stats": [
            {
                "date": "2025-08-18",
                "messages": 0,
                "replies": 1,
                "reaction": 0,
                "socials": 0
            }
        ]
    }
}
"""


@pytest.fixture(scope="module")
def community() -> SeededCommunity:
    return SeededCommunity(size=1200, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def standin(community: SeededCommunity) -> Iterator[ReturningAIStandin]:
    with ReturningAIStandin(StandinConfig(token=TOKEN, community=community)) as running:
        yield running


@pytest.fixture(scope="module")
def client(standin: ReturningAIStandin) -> Iterator[httpx.Client]:
    with _client(standin.base_url) as http:
        yield http


def _client(base_url: str, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # trust_env=False: no proxy from the environment may sit between the tests and 127.0.0.1.
    return httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=5.0)


def _stats(client: httpx.Client, identifier: str, days: int = 30, identifier_type: str = "userId") -> Any:
    response = client.post(STATS, json={"identifier": identifier, "identifier_type": identifier_type, "days": days})
    assert response.status_code == 200, response.text
    return response.json()


def _shape(value: Any) -> Any:
    """Reduce a JSON value to its keys and value types, so two documents can be compared by form."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _active(stat: dict[str, Any]) -> bool:
    return any(stat[key] for key in ACTIVITY_KEYS)


def _first(community: SeededCommunity, profile: str) -> CommunityMember:
    return next(member for member in community.members() if member.profile == profile)


def test_stats_response_has_the_seed_page_shape(client: httpx.Client, community: SeededCommunity) -> None:
    # GIVEN the seed page's example and a member with activity on the last day
    example = json.loads(SEED_EXAMPLE)
    member = _first(community, "streaker")

    # WHEN the stand-in answers a one-day request
    response = client.post(STATS, json={"identifier": member.user_id, "identifier_type": "userId", "days": 1})

    # THEN keys, nesting and value types match the example, with `reaction` singular
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert _shape(body) == _shape(example)
    assert body["message"] == example["message"]
    assert set(body["data"]["totals"]) == {"messages", "replies", "reaction", "socials"}


def test_range_spans_days_and_totals_are_daily_sums(client: httpx.Client, community: SeededCommunity) -> None:
    for member in community.members()[:40]:
        data = _stats(client, member.user_id, days=30)["data"]

        start = date.fromisoformat(data["range"]["start_date"])
        end = date.fromisoformat(data["range"]["end_date"])
        assert data["user_id"] == member.user_id
        assert end == AS_OF
        assert (end - start).days + 1 == 30
        for key in ACTIVITY_KEYS:
            assert data["totals"][key] == sum(stat[key] for stat in data["daily_stats"])
        for stat in data["daily_stats"]:
            assert set(stat) == {"date", *ACTIVITY_KEYS}
            assert start <= date.fromisoformat(stat["date"]) <= end
            assert all(isinstance(stat[key], int) and stat[key] >= 0 for key in ACTIVITY_KEYS)


def test_days_defaults_to_30(client: httpx.Client, community: SeededCommunity) -> None:
    member = community.members()[0]

    response = client.post(STATS, json={"identifier": member.user_id, "identifier_type": "userId"})

    data = response.json()["data"]
    assert data["range"]["start_date"] == (AS_OF - timedelta(days=29)).isoformat()


def test_same_seed_gives_same_data_and_another_seed_differs() -> None:
    first = SeededCommunity(size=60, seed=7, as_of=AS_OF)
    again = SeededCommunity(size=60, seed=7, as_of=AS_OF)
    other = SeededCommunity(size=60, seed=8, as_of=AS_OF)

    assert first.members() == again.members()
    assert [first.stats(m, 30) for m in first.members()] == [again.stats(m, 30) for m in again.members()]
    assert [m.profile for m in first.members()] != [m.profile for m in other.members()]
    assert [first.stats(m, 30)["totals"] for m in first.members()] != [
        other.stats(m, 30)["totals"] for m in other.members()
    ]


def test_every_daily_stats_layout_is_served(client: httpx.Client, community: SeededCommunity) -> None:
    seen: Counter[str] = Counter()
    for member in community.members()[:60]:
        layout = community.daily_stats_layout(member)
        seen[layout] += 1
        daily = _stats(client, member.user_id, days=30)["data"]["daily_stats"]
        dates = [stat["date"] for stat in daily]

        if layout == "zero_filled_newest_first":
            assert len(daily) == 30
            assert dates == sorted(dates, reverse=True)
        elif layout == "zero_filled_oldest_first":
            assert len(daily) == 30
            assert dates == sorted(dates)
        else:
            assert dates == sorted(dates)
            assert all(_active(stat) for stat in daily)

    assert set(seen) == set(LAYOUTS)
    assert min(seen.values()) >= 10


def test_profiles_and_ids_follow_the_stated_proportions(community: SeededCommunity) -> None:
    members = community.members()
    profiles: Counter[str] = Counter(member.profile for member in members)
    opaque = [member for member in members if re.fullmatch(r"[0-9a-f]{24}", member.user_id)]

    assert len(members) == 1200
    for profile, share in {"quiet": 0.35, "casual": 0.35, "busy": 0.20, "streaker": 0.10}.items():
        assert abs(profiles[profile] / 1200 - share) < 0.03, profiles
    assert 0.02 < len(opaque) / 1200 < 0.08
    assert all(member.user_id.isdigit() for member in members if member not in opaque)
    assert len({member.user_id for member in members}) == 1200
    assert members[55].email == "member55@community.test"


def test_activity_follows_each_profile(community: SeededCommunity) -> None:
    window = [AS_OF - timedelta(days=n) for n in range(60)]

    def active_share(profile: str) -> float:
        sample = [member for member in community.members() if member.profile == profile][:15]
        days = [community.daily_activity(member, day) for member in sample for day in window]
        return sum(1 for counts in days if any(counts.values())) / len(days)

    assert active_share("quiet") < 0.08
    assert 0.1 < active_share("casual") < 0.45
    assert active_share("busy") > 0.7

    busy = _first(community, "busy")
    busy_messages = [community.daily_activity(busy, day)["messages"] for day in window]
    assert all(5 <= count <= 40 for count in busy_messages if count)

    for streaker in [member for member in community.members() if member.profile == "streaker"][:15]:
        assert community.streak_length(streaker) >= 10
        assert all(community.daily_activity(streaker, AS_OF - timedelta(days=n))["messages"] for n in range(10))


def test_no_activity_after_as_of(community: SeededCommunity) -> None:
    for member in community.members()[:50]:
        assert set(community.daily_activity(member, AS_OF + timedelta(days=1)).values()) == {0}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {TOKEN}", "Bearer"])
def test_missing_or_invalid_token_is_401(standin: ReturningAIStandin, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with _client(standin.base_url, token=None) as anonymous:
        response = anonymous.post(
            STATS, json={"identifier": "188000", "identifier_type": "userId", "days": 30}, headers=headers
        )

    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Unauthorized"}


@pytest.mark.parametrize("days", [0, 366, -1, "30", 30.5, True, None])
def test_days_out_of_range_is_400(client: httpx.Client, days: object) -> None:
    response = client.post(STATS, json={"identifier": "188000", "identifier_type": "userId", "days": days})

    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "days must be between 1 and 365"}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"identifier_type": "userId", "days": 30}',
        b'{"identifier": "", "identifier_type": "userId"}',
        b'{"identifier": "188000", "identifier_type": "username"}',
        b'{"identifier": "188000"}',
    ],
)
def test_bad_body_is_400(client: httpx.Client, content: bytes) -> None:
    response = client.post(STATS, content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["message"]


def test_unknown_member_is_404(client: httpx.Client) -> None:
    response = client.post(STATS, json={"identifier": "999999999", "identifier_type": "userId", "days": 30})

    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "User not found"}


def test_email_lookup_is_case_insensitive(client: httpx.Client, community: SeededCommunity) -> None:
    member = community.members()[55]

    by_email = _stats(client, member.email.upper(), identifier_type="email")
    by_id = _stats(client, member.user_id)

    assert by_email == by_id
    assert by_email["data"]["user_id"] == member.user_id


def test_user_info_returns_lifetime_profile(client: httpx.Client, community: SeededCommunity) -> None:
    member = _first(community, "busy")

    by_id = client.post(INFO, json={"idOrEmail": member.user_id})
    by_email = client.post(INFO, json={"idOrEmail": member.email})
    window = _stats(client, member.user_id, days=30)["data"]

    assert by_id.status_code == 200
    assert by_id.json() == by_email.json()
    data = by_id.json()["data"]
    assert by_id.json()["status"] == "success"
    assert data["_id"] == data["id"] == member.user_id
    assert data["email"] == member.email
    assert data["totalMessages"] >= window["totals"]["messages"]
    assert client.post(INFO, json={"idOrEmail": "nobody@community.test"}).status_code == 404


def test_unknown_path_is_404_and_other_methods_are_405(client: httpx.Client) -> None:
    missing = client.post("/users/activity/history", json={})
    wrong_method = client.get(STATS)

    assert missing.status_code == 404
    assert missing.json()["status"] == "error"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["status"] == "error"


def test_error_rate_one_gives_500_and_rate_limit_one_gives_429(community: SeededCommunity) -> None:
    body = {"identifier": community.members()[0].user_id, "identifier_type": "userId", "days": 30}

    with ReturningAIStandin(StandinConfig(token=TOKEN, community=community, error_rate=1.0)) as failing:
        with _client(failing.base_url) as http:
            failed = http.post(STATS, json=body)
        with _client(failing.base_url, token="wrong") as http:
            unauthorized = http.post(STATS, json=body)
        counts = failing.status_counts

    limiting = StandinConfig(token=TOKEN, community=community, rate_limit_rate=1.0)
    with ReturningAIStandin(limiting) as limited, _client(limited.base_url) as http:
        throttled = http.post(STATS, json=body)

    assert failed.status_code == 500
    assert failed.json()["status"] == "error"
    assert unauthorized.status_code == 401
    assert counts == {500: 1, 401: 1}
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"


def test_fault_sequence_repeats_for_a_fault_seed(community: SeededCommunity) -> None:
    body = {"identifier": community.members()[0].user_id, "identifier_type": "userId", "days": 1}

    def statuses() -> list[int]:
        config = StandinConfig(token=TOKEN, community=community, error_rate=0.3, rate_limit_rate=0.3, fault_seed=3)
        with ReturningAIStandin(config) as standin, _client(standin.base_url) as http:
            codes = [http.post(STATS, json=body).status_code for _ in range(30)]
            assert standin.request_count == 30
            return codes

    first = statuses()

    assert first == statuses()
    assert {200, 429, 500} <= set(first)


def test_stop_closes_the_port(community: SeededCommunity) -> None:
    standin = ReturningAIStandin(StandinConfig(token=TOKEN, community=community))
    standin.start()
    port = standin.port
    with _client(standin.base_url) as http:
        assert http.post(STATS, json={"identifier": "x", "identifier_type": "userId"}).status_code == 404

        standin.stop()
        standin.stop()

        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(httpx.TransportError):
            http.post(STATS, json={"identifier": "x", "identifier_type": "userId"})


@pytest.mark.parametrize(
    "overrides",
    [{"error_rate": 1.5}, {"rate_limit_rate": -0.1}, {"latency_seconds": -1.0}, {"max_days": 0}, {"token": ""}],
)
def test_config_rejects_impossible_values(community: SeededCommunity, overrides: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"token": TOKEN, "community": community, **overrides}

    with pytest.raises(ValueError, match="must"):
        StandinConfig(**settings)
