"""The stats response models, member references and settings, checked against the seed page's contract."""

from __future__ import annotations

import json
import random
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from community_milestones.config import (
    DEFAULT_PLATFORM_BASE_URL,
    ScanSettings,
    WebhookSettings,
    WorkerSettings,
)
from community_milestones.errors import ConfigurationError
from community_milestones.members import MemberRef
from community_milestones.returning_ai.models import ActivityCounts, ActivityStats, StatsEnvelope, StatsRange

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "stats_seed_response.json"
SEEDS = REPO / ".." / "shared" / "seeds"

# A JSON example on the seed pages is the block that follows a line reading exactly "Example".
EXAMPLE_BLOCK = re.compile(r"^Example\n(\{\n.*?\n\})$", re.MULTILINE | re.DOTALL)

START = date(2025, 8, 1)
END = date(2025, 8, 7)
HEX_ID = "64f1c2e9a0b1c2d3e4f5a6b7"


def day_entry(day: date, messages: Any = 0, replies: Any = 0, reaction: Any = 0, socials: Any = 0) -> dict[str, Any]:
    return {"date": day.isoformat(), "messages": messages, "replies": replies, "reaction": reaction, "socials": socials}


def stats_payload(
    daily: list[dict[str, Any]] | None = None,
    *,
    user_id: Any = "188055",
    start: date = START,
    end: date = END,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "range": {"start_date": start.isoformat(), "end_date": end.isoformat()},
        "totals": {"messages": 3, "replies": 2, "reaction": 1, "socials": 0},
        "daily_stats": daily if daily is not None else [],
    }


def worker_environ(**overrides: str) -> dict[str, str]:
    environ = {
        "TABLE_NAME": "community-milestones",
        "API_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:platform-key",
        "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:5000/123456789012/evaluations-dlq",
    }
    environ.update(overrides)
    return environ


# --- the seed page -------------------------------------------------------------------------------------------


def test_seed_example_parses_exactly() -> None:
    # GIVEN the seed page's 200 response example, byte for byte
    raw = FIXTURE.read_bytes()

    # WHEN it is parsed as the client parses a response
    envelope = StatsEnvelope.model_validate_json(raw)

    # THEN every value is as published, with the singular `reaction` read as reactions
    stats = envelope.data
    assert envelope.status == "success"
    assert envelope.message == "User gamification stats fetched successfully"
    assert stats.user_id == "188055"
    assert stats.range == StatsRange(start_date=date(2025, 8, 18), end_date=date(2025, 8, 18))
    assert stats.totals == ActivityCounts(messages=0, replies=1, reactions=0, socials=0)
    assert len(stats.daily_stats) == 1
    day = stats.daily_stats[0]
    assert day.date == date(2025, 8, 18)
    assert (day.messages, day.replies, day.reactions, day.socials) == (0, 1, 0, 0)
    assert stats.daily("replies") == {date(2025, 8, 18): 1}
    assert stats.daily("activity") == {date(2025, 8, 18): 1}


def test_fixture_keeps_the_seed_indentation() -> None:
    # GIVEN the fixture file
    text = FIXTURE.read_text(encoding="utf-8")

    # WHEN its lines are inspected
    lines = text.splitlines()

    # THEN it keeps the page's 4-space indentation and ends with the closing brace
    assert lines[0] == "{"
    assert lines[1] == '    "status": "success",'
    assert lines[-1] == "}"


def test_every_seed_example_parses_and_the_response_matches_the_fixture() -> None:
    # GIVEN the shared seed pages, when this checkout has them
    if not SEEDS.is_dir():
        pytest.skip(f"the seed pages are not beside this checkout ({SEEDS})")
    pages = sorted(SEEDS.glob("*.txt"))
    assert pages, f"{SEEDS} holds no seed page"

    # WHEN every JSON example is extracted from them
    examples = [block for page in pages for block in EXAMPLE_BLOCK.findall(page.read_text(encoding="utf-8"))]

    # THEN each parses as it stands, and the stats response example is the fixture, byte for byte
    assert len(examples) >= 2, "expected at least the request and the response example"
    parsed = [json.loads(block) for block in examples]
    responses = [block for block, value in zip(examples, parsed, strict=True) if value.get("status") == "success"]
    assert responses, "no response example found"
    fixture = FIXTURE.read_text(encoding="utf-8")
    assert fixture.removesuffix("\n") in responses
    assert json.loads(fixture) in parsed


def test_seed_request_example_has_the_documented_fields() -> None:
    # GIVEN the shared seed pages, when this checkout has them
    if not SEEDS.is_dir():
        pytest.skip(f"the seed pages are not beside this checkout ({SEEDS})")
    text = "\n".join(page.read_text(encoding="utf-8") for page in sorted(SEEDS.glob("*.txt")))

    # WHEN the request examples are picked out
    requests = [value for value in map(json.loads, EXAMPLE_BLOCK.findall(text)) if "identifier_type" in value]

    # THEN they carry exactly the fields the client sends
    assert requests
    for request in requests:
        assert set(request) == {"identifier", "identifier_type", "days"}
        assert request["identifier_type"] in ("userId", "email")


# --- tolerant parsing ----------------------------------------------------------------------------------------


def test_counts_as_numeric_strings_are_accepted() -> None:
    # GIVEN counts sent as numeric strings, in totals and in a day
    payload = stats_payload([day_entry(START, messages="4", replies="0", reaction="2", socials="1")])
    payload["totals"] = {"messages": "4", "replies": "0", "reaction": "2", "socials": "1"}

    # WHEN the payload is parsed from JSON
    stats = ActivityStats.model_validate_json(json.dumps(payload))

    # THEN they are integers
    assert stats.totals == ActivityCounts(messages=4, replies=0, reactions=2, socials=1)
    assert stats.daily("reactions") == {START: 2}
    assert stats.totals.activity == 7


def test_user_id_given_as_a_number_becomes_a_string() -> None:
    # GIVEN a user id sent as a JSON number
    raw = json.dumps(stats_payload(user_id=188055))

    # WHEN it is parsed
    stats = ActivityStats.model_validate_json(raw)

    # THEN it is the same id as a string
    assert stats.user_id == "188055"


@pytest.mark.parametrize("user_id", [HEX_ID, HEX_ID.upper(), "000188055"])
def test_user_id_is_kept_opaque(user_id: str) -> None:
    # GIVEN a user id in a form other than plain digits
    raw = json.dumps(stats_payload(user_id=user_id))

    # WHEN it is parsed
    stats = ActivityStats.model_validate_json(raw)

    # THEN it is kept exactly as sent: no case change, no number conversion
    assert stats.user_id == user_id


def test_unknown_fields_are_ignored_at_every_level() -> None:
    # GIVEN a response with fields the contract does not name, at every level
    day = day_entry(START, messages=1) | {"likes": 9}
    data = stats_payload([day]) | {"username": "ana", "timezone": "UTC"}
    data["totals"] = data["totals"] | {"visits": 12}
    data["range"] = data["range"] | {"days": 7}
    envelope = {"status": "success", "message": "ok", "data": data, "meta": {"page": 1}}

    # WHEN it is parsed
    stats = StatsEnvelope.model_validate_json(json.dumps(envelope)).data

    # THEN the known fields are read and the rest is ignored
    assert stats.daily("messages") == {START: 1}
    assert stats.totals.messages == 3


def test_plural_reactions_is_accepted_too() -> None:
    # GIVEN counts that spell reactions in the plural
    payload = stats_payload()
    payload["totals"] = {"messages": 0, "replies": 0, "reactions": 5, "socials": 0}
    payload["daily_stats"] = [{"date": START.isoformat(), "messages": 0, "replies": 0, "reactions": 5, "socials": 0}]

    # WHEN it is parsed
    stats = ActivityStats.model_validate(payload)

    # THEN reactions are read under either spelling
    assert stats.totals.reactions == 5
    assert stats.daily("reactions") == {START: 5}


def test_daily_does_not_depend_on_the_order_of_daily_stats() -> None:
    # GIVEN a week of days, listed oldest first and shuffled (newest first included)
    days = [day_entry(START + timedelta(days=offset), messages=offset, replies=1) for offset in range(7)]
    shuffled = days.copy()
    random.Random(20250818).shuffle(shuffled)

    # WHEN each is parsed
    ordered = ActivityStats.model_validate(stats_payload(days))
    newest_first = ActivityStats.model_validate(stats_payload(list(reversed(days))))
    mixed = ActivityStats.model_validate(stats_payload(shuffled))

    # THEN the per-day mapping is the same for every metric
    for metric in ("messages", "replies", "reactions", "socials", "activity"):
        assert ordered.daily(metric) == newest_first.daily(metric) == mixed.daily(metric)
    assert ordered.daily("messages")[START + timedelta(days=3)] == 3


def test_missing_days_mean_zero() -> None:
    # GIVEN the same activity once zero-filled and once with the empty days left out
    active = {START: 2, START + timedelta(days=4): 1}
    filled = [day_entry(START + timedelta(days=n), messages=active.get(START + timedelta(days=n), 0)) for n in range(7)]
    sparse = [day_entry(day, messages=count) for day, count in active.items()]

    # WHEN both are parsed
    from_filled = ActivityStats.model_validate(stats_payload(filled))
    from_sparse = ActivityStats.model_validate(stats_payload(sparse))

    # THEN every day of the range reads the same, a missing day being zero
    for offset in range(7):
        day = START + timedelta(days=offset)
        assert from_filled.daily("messages").get(day, 0) == from_sparse.daily("messages").get(day, 0)
    assert from_sparse.daily("messages").get(START + timedelta(days=1), 0) == 0
    assert {day for day, count in from_filled.daily("messages").items() if count} == set(active)


def test_no_daily_stats_at_all_is_an_empty_window() -> None:
    # GIVEN a response without daily_stats
    payload = stats_payload()
    del payload["daily_stats"]

    # WHEN it is parsed
    stats = ActivityStats.model_validate(payload)

    # THEN there is no day with activity, and no error
    assert stats.daily("activity") == {}


def test_dates_are_calendar_dates_never_shifted() -> None:
    # GIVEN a range of one day at the edge of a month
    payload = stats_payload([day_entry(date(2025, 8, 31), replies=1)], start=date(2025, 8, 31), end=date(2025, 8, 31))

    # WHEN it is parsed
    stats = ActivityStats.model_validate(payload)

    # THEN the day is the platform's calendar date as given
    assert stats.daily("replies") == {date(2025, 8, 31): 1}


# --- strict parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [-1, "-3"])
def test_negative_count_is_rejected(count: int | str) -> None:
    # GIVEN a negative count in a day
    payload = stats_payload([day_entry(START, replies=count)])

    # WHEN it is parsed
    with pytest.raises(ValidationError) as caught:
        ActivityStats.model_validate_json(json.dumps(payload))

    # THEN the error names the field
    assert "daily_stats.0.replies" in str(caught.value)


def test_negative_total_is_rejected() -> None:
    # GIVEN a negative total
    payload = stats_payload()
    payload["totals"]["socials"] = -2

    # WHEN / THEN parsing fails on that field
    with pytest.raises(ValidationError, match=r"totals\.socials"):
        ActivityStats.model_validate(payload)


@pytest.mark.parametrize("count", [1.5, "many", None])
def test_non_integer_count_is_rejected(count: object) -> None:
    # GIVEN a count that is not a whole number
    payload = stats_payload([day_entry(START, messages=count)])

    # WHEN / THEN parsing fails
    with pytest.raises(ValidationError):
        ActivityStats.model_validate_json(json.dumps(payload))


@pytest.mark.parametrize("day", [START - timedelta(days=1), END + timedelta(days=1)])
def test_day_outside_the_range_is_rejected(day: date) -> None:
    # GIVEN a day just outside the range
    payload = stats_payload([day_entry(START), day_entry(day, messages=1)])

    # WHEN / THEN parsing fails, naming the day
    with pytest.raises(ValidationError, match=f"{day.isoformat()}, outside the range"):
        ActivityStats.model_validate(payload)


def test_days_on_both_range_edges_are_accepted() -> None:
    # GIVEN days on the first and the last date of the range
    payload = stats_payload([day_entry(START, messages=1), day_entry(END, messages=2)])

    # WHEN it is parsed
    stats = ActivityStats.model_validate(payload)

    # THEN both are kept
    assert stats.daily("messages") == {START: 1, END: 2}


def test_end_date_before_start_date_is_rejected() -> None:
    # GIVEN a range that runs backwards
    payload = stats_payload(start=END, end=START)

    # WHEN / THEN parsing fails, saying so
    with pytest.raises(ValidationError, match="before it starts"):
        ActivityStats.model_validate(payload)


def test_duplicate_day_is_rejected() -> None:
    # GIVEN the same day listed twice
    payload = stats_payload([day_entry(START, messages=1), day_entry(START, messages=2)])

    # WHEN / THEN parsing fails, naming the day
    with pytest.raises(ValidationError, match=f"{START.isoformat()} twice"):
        ActivityStats.model_validate(payload)


@pytest.mark.parametrize("missing", ["user_id", "range", "totals"])
def test_missing_required_field_is_rejected(missing: str) -> None:
    # GIVEN a response without a required field
    payload = stats_payload()
    del payload[missing]

    # WHEN / THEN parsing fails, naming it
    with pytest.raises(ValidationError, match=missing):
        ActivityStats.model_validate(payload)


def test_blank_user_id_is_rejected() -> None:
    # GIVEN an empty user id
    payload = stats_payload(user_id="")

    # WHEN / THEN parsing fails
    with pytest.raises(ValidationError, match="user_id"):
        ActivityStats.model_validate(payload)


@pytest.mark.parametrize("status", ["error", "failed", "Error"])
def test_envelope_rejects_a_status_other_than_success(status: str) -> None:
    # GIVEN the seed response with another status
    envelope = json.loads(FIXTURE.read_text(encoding="utf-8"))
    envelope["status"] = status

    # WHEN / THEN parsing fails, quoting the status
    with pytest.raises(ValidationError, match=f"status is '{status}'"):
        StatsEnvelope.model_validate(envelope)


def test_envelope_without_data_is_rejected() -> None:
    # GIVEN a success envelope with no data
    envelope = {"status": "success", "message": "User gamification stats fetched successfully"}

    # WHEN / THEN parsing fails on data
    with pytest.raises(ValidationError, match="data"):
        StatsEnvelope.model_validate(envelope)


def test_unknown_metric_is_refused() -> None:
    # GIVEN parsed counts
    counts = ActivityCounts(messages=1, replies=2, reactions=3, socials=4)

    # WHEN / THEN asking for a metric that does not exist fails, while every known one answers
    with pytest.raises(KeyError, match="visits"):
        counts.value("visits")
    assert [counts.value(m) for m in ("messages", "replies", "reactions", "socials", "activity")] == [1, 2, 3, 4, 10]


# --- member references ---------------------------------------------------------------------------------------


def test_email_is_trimmed_and_lower_cased() -> None:
    # GIVEN an email with capitals and surrounding spaces
    raw = "  Ana.Silva@Example.COM "

    # WHEN it becomes a member reference
    member = MemberRef(identifier=raw, identifier_type="email")

    # THEN it is normalised, and so is its key
    assert member.identifier == "ana.silva@example.com"
    assert member.key == "email#ana.silva@example.com"


def test_user_id_is_trimmed_but_keeps_its_case() -> None:
    # GIVEN a hex user id in capitals
    raw = f" {HEX_ID.upper()} "

    # WHEN it becomes a member reference, userId being the default type
    member = MemberRef(identifier=raw)

    # THEN only the spaces go
    assert member.identifier_type == "userId"
    assert member.identifier == HEX_ID.upper()
    assert member.key == f"userId#{HEX_ID.upper()}"


def test_the_same_member_compares_equal_whatever_the_spelling() -> None:
    # GIVEN one email written two ways
    first = MemberRef(identifier="Ana@Example.com", identifier_type="email")
    second = MemberRef(identifier="ana@example.com ", identifier_type="email")

    # WHEN / THEN they are the same member
    assert first == second
    assert first.key == second.key


@pytest.mark.parametrize("identifier", ["", "   ", "\t\n"])
@pytest.mark.parametrize("identifier_type", ["userId", "email"])
def test_blank_identifier_is_rejected(identifier: str, identifier_type: str) -> None:
    # GIVEN a blank identifier
    # WHEN / THEN no member reference can be made
    with pytest.raises(ValidationError):
        MemberRef.model_validate({"identifier": identifier, "identifier_type": identifier_type})


def test_unknown_identifier_type_is_rejected() -> None:
    # GIVEN an identifier type the platform does not document
    # WHEN / THEN no member reference can be made
    with pytest.raises(ValidationError, match="identifier_type"):
        MemberRef.model_validate({"identifier": "188055", "identifier_type": "username"})


# --- settings ------------------------------------------------------------------------------------------------


def test_worker_defaults_are_applied() -> None:
    # GIVEN only the required variables
    environ = worker_environ()

    # WHEN the worker settings are read
    settings = WorkerSettings.from_env(environ)

    # THEN the defaults fill the rest
    assert settings.table_name == "community-milestones"
    assert settings.platform_base_url == DEFAULT_PLATFORM_BASE_URL
    assert settings.stats_window_days == 30
    assert settings.platform_timeout_seconds == 10.0
    assert settings.max_receive_count == 8
    assert settings.secret_max_age_seconds == 300
    assert settings.rules_file is None


def test_webhook_and_scan_defaults_are_applied() -> None:
    # GIVEN only the required variables of each function
    webhook_environ = {
        "TABLE_NAME": "community-milestones",
        "QUEUE_URL": "http://127.0.0.1:5000/123456789012/evaluations",
        "WEBHOOK_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-key",
    }
    scan_environ = {"TABLE_NAME": "community-milestones", "QUEUE_URL": webhook_environ["QUEUE_URL"]}

    # WHEN the settings are read
    webhook = WebhookSettings.from_env(webhook_environ)
    scan = ScanSettings.from_env(scan_environ)

    # THEN the defaults fill the rest
    assert webhook.secret_max_age_seconds == 300
    assert (scan.scan_period_hours, scan.scan_page_size, scan.scan_safety_margin_ms) == (24, 100, 10_000)


def test_values_from_the_environment_win_over_defaults() -> None:
    # GIVEN every optional variable set
    environ = worker_environ(
        PLATFORM_BASE_URL="http://127.0.0.1:8080/apis/v1",
        STATS_WINDOW_DAYS="7",
        PLATFORM_TIMEOUT_SECONDS="2.5",
        MAX_RECEIVE_COUNT="3",
        SECRET_MAX_AGE_SECONDS="0",
        RULES_FILE="/opt/rules/milestones.yaml",
    )

    # WHEN the worker settings are read
    settings = WorkerSettings.from_env(environ)

    # THEN each is converted to its type
    assert settings.platform_base_url == "http://127.0.0.1:8080/apis/v1"
    assert settings.stats_window_days == 7
    assert settings.platform_timeout_seconds == 2.5
    assert settings.max_receive_count == 3
    assert settings.secret_max_age_seconds == 0
    assert settings.rules_file == Path("/opt/rules/milestones.yaml")


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the variables in the process environment
    for name, value in worker_environ(STATS_WINDOW_DAYS="14").items():
        monkeypatch.setenv(name, value)

    # WHEN the settings are read without an explicit mapping
    settings = WorkerSettings.from_env()

    # THEN the process environment was used
    assert settings.stats_window_days == 14


@pytest.mark.parametrize("missing", ["TABLE_NAME", "API_TOKEN_SECRET_ARN", "DEAD_LETTER_QUEUE_URL"])
def test_missing_variable_is_named(missing: str) -> None:
    # GIVEN the environment without one required variable
    environ = worker_environ()
    values = list(environ.values())
    del environ[missing]

    # WHEN the settings are read
    with pytest.raises(ConfigurationError) as caught:
        WorkerSettings.from_env(environ)

    # THEN the error names the variable and echoes none of the values
    message = str(caught.value)
    assert missing in message
    assert "WorkerSettings" in message
    for value in values:
        assert value not in message


@pytest.mark.parametrize("days", ["0", "400", "-30"])
def test_window_outside_one_year_is_refused(days: str) -> None:
    # GIVEN a stats window that is empty or longer than a year
    environ = worker_environ(STATS_WINDOW_DAYS=days)

    # WHEN / THEN the settings are refused, naming the variable
    with pytest.raises(ConfigurationError, match="STATS_WINDOW_DAYS"):
        WorkerSettings.from_env(environ)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATS_WINDOW_DAYS", "key-sk_live_4f9a"),
        ("PLATFORM_BASE_URL", "ftp://key-sk_live_4f9a@127.0.0.1"),
        ("PLATFORM_TIMEOUT_SECONDS", "key-sk_live_4f9a"),
        ("TABLE_NAME", "k4"),
    ],
)
def test_invalid_value_is_never_echoed(name: str, value: str) -> None:
    # GIVEN a variable holding an invalid value that looks like a secret
    environ = worker_environ(**{name: value})

    # WHEN the settings are read
    with pytest.raises(ConfigurationError) as caught:
        WorkerSettings.from_env(environ)

    # THEN the error names the variable but never repeats the value
    message = str(caught.value)
    assert name in message
    assert value not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_every_problem_is_named_at_once() -> None:
    # GIVEN two problems in one environment
    environ = worker_environ(STATS_WINDOW_DAYS="0")
    del environ["TABLE_NAME"]

    # WHEN / THEN one error names both
    with pytest.raises(ConfigurationError) as caught:
        WorkerSettings.from_env(environ)
    assert "TABLE_NAME" in str(caught.value)
    assert "STATS_WINDOW_DAYS" in str(caught.value)


def test_a_boolean_count_breaks_the_contract() -> None:
    # GIVEN a day whose message count is `true`
    # WHEN it is parsed, THEN it is refused rather than counted as one
    with pytest.raises(ValidationError, match="not true or false"):
        ActivityCounts.model_validate({"messages": True, "replies": 0, "reaction": 0, "socials": 0})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        pytest.param(
            {"RETRY_BASE_SECONDS": "600", "RETRY_MAX_SECONDS": "60"}, "RETRY_BASE_SECONDS", id="backoff-shrinks"
        ),
        pytest.param({"PLATFORM_TIMEOUT_SECONDS": "60"}, "PLATFORM_TIMEOUT_SECONDS", id="timeout-past-budget"),
        pytest.param({"API_TOKEN_SECRET_ARN": "   "}, "API_TOKEN_SECRET_ARN", id="blank-secret-id"),
        pytest.param({"QUEUE_URL": "not a url"}, "QUEUE_URL", id="bad-queue-url"),
        pytest.param({"TABLE_NAME": "bad name!"}, "TABLE_NAME", id="bad-table-name"),
    ],
)
def test_worker_settings_that_cannot_work_are_refused(overrides: dict[str, str], named: str) -> None:
    # GIVEN a worker environment with a setting that could never work
    # WHEN it is read, THEN a configuration error names it
    with pytest.raises(ConfigurationError, match=named):
        WorkerSettings.from_env(worker_environ(**overrides))


@pytest.mark.parametrize("user_id", [pytest.param("   ", id="blank"), pytest.param("9" * 321, id="too-long")])
def test_an_unusable_user_id_breaks_the_contract(user_id: str) -> None:
    # GIVEN a stats response whose user id could never name a member
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))["data"]
    data["user_id"] = user_id

    # WHEN it is parsed, THEN it is refused
    with pytest.raises(ValidationError, match="user_id"):
        ActivityStats.model_validate(data)


def test_an_absurd_count_breaks_the_contract() -> None:
    # GIVEN a count no community could reach, and that DynamoDB could not store exactly
    # WHEN it is parsed, THEN it is refused
    with pytest.raises(ValidationError, match="less than or equal"):
        ActivityCounts.model_validate({"messages": 10**40, "replies": 0, "reaction": 0, "socials": 0})
