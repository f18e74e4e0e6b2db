"""Milestone rules: the rules file, its validation, and the pure evaluation of each kind."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from community_milestones.errors import ConfigurationError, RulesError
from community_milestones.rules import (
    ActiveDaysRule,
    MilestoneReached,
    RuleSet,
    StreakRule,
    WindowTotalRule,
    evaluate,
    load_rules,
)
from community_milestones.rules.evaluate import longest_run, measure
from tests.helpers import DayCounts, make_stats

START = date(2025, 8, 1)
SEED = 20250818


def rules_of(*milestones: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({"version": 1, "milestones": list(milestones)})


def consecutive(first: int, count: int, per_day: DayCounts = 1) -> dict[str, DayCounts]:
    """`count` consecutive days from day `first` of August 2025 (day 1 is August 1st)."""
    return {(START + timedelta(days=first - 1 + offset)).isoformat(): per_day for offset in range(count)}


def on_days(*days: int, per_day: DayCounts = 1) -> dict[str, DayCounts]:
    """The given days of August 2025, each with `per_day`."""
    return {(START + timedelta(days=day - 1)).isoformat(): per_day for day in days}


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


VALID_RULE = """
  - id: first-steps
    title: First activity
    kind: window_total
    threshold: 1
"""


# ---------------------------------------------------------------------------
# The default rules
# ---------------------------------------------------------------------------


def test_default_rules_load_and_fit_the_default_window() -> None:
    # GIVEN the packaged default rules
    # WHEN they are loaded
    rules = load_rules()

    # THEN they hold every kind, with unique ids, and a 30-day window can reach each one
    ids = [rule.id for rule in rules.milestones]
    assert len(ids) == len(set(ids))
    assert {type(rule) for rule in rules.milestones} == {WindowTotalRule, StreakRule, ActiveDaysRule}
    assert "first-steps" in ids
    rules.check_window(30)


def test_default_rules_reach_first_steps_on_the_platforms_published_example() -> None:
    # GIVEN the seed page's example: one reply on one day
    stats = make_stats({"2025-08-18": {"replies": 1}})

    # WHEN the default rules evaluate it
    reached = evaluate(load_rules(), stats)

    # THEN only the first activity milestone is reached
    assert reached == [MilestoneReached("first-steps", "window_total", "activity", 1, 1)]


def test_no_activity_reaches_nothing() -> None:
    # GIVEN a member with an empty window
    stats = make_stats({}, start="2025-08-01", end="2025-08-30")

    # WHEN the default rules evaluate it
    # THEN nothing is reached
    assert evaluate(load_rules(), stats) == []


# ---------------------------------------------------------------------------
# Each kind at, below and above its threshold
# ---------------------------------------------------------------------------

WINDOW_TOTAL = {"id": "ten-messages", "title": "Ten", "kind": "window_total", "metric": "messages", "threshold": 10}
STREAK = {"id": "streak-3", "title": "Three in a row", "kind": "streak", "days": 3}
ACTIVE_DAYS = {"id": "active-3", "title": "Three days", "kind": "active_days", "days": 3}


@pytest.mark.parametrize(
    ("rule", "daily", "value", "reached"),
    [
        pytest.param(WINDOW_TOTAL, on_days(1, 2, per_day={"messages": 4, "replies": 9}), 8, False, id="total-below"),
        pytest.param(WINDOW_TOTAL, on_days(1, 2, per_day=5), 10, True, id="total-at"),
        pytest.param(WINDOW_TOTAL, on_days(1, 2, 3, per_day=5), 15, True, id="total-above"),
        pytest.param(STREAK, {**consecutive(1, 2), **consecutive(4, 2)}, 2, False, id="streak-below"),
        pytest.param(STREAK, consecutive(10, 3), 3, True, id="streak-at"),
        pytest.param(STREAK, consecutive(10, 5), 5, True, id="streak-above"),
        pytest.param(ACTIVE_DAYS, on_days(1, 20), 2, False, id="active-below"),
        pytest.param(ACTIVE_DAYS, on_days(1, 10, 20), 3, True, id="active-at"),
        pytest.param(ACTIVE_DAYS, on_days(1, 5, 10, 20), 4, True, id="active-above"),
    ],
)
def test_each_kind_is_reached_exactly_from_its_threshold(
    rule: dict[str, Any], daily: dict[str, DayCounts], value: int, reached: bool
) -> None:
    # GIVEN one rule and a window whose value is below, at or above its threshold
    rules = rules_of(rule)
    stats = make_stats(daily)

    # WHEN the rules evaluate the stats
    found = evaluate(rules, stats)

    # THEN the measured value is exact, and the milestone is reached only from the threshold on
    assert measure(rules.milestones[0], stats) == value
    threshold = rule["threshold"] if rule["kind"] == "window_total" else rule["days"]
    expected = [MilestoneReached(rule["id"], rule["kind"], rule.get("metric", "activity"), value, threshold)]
    assert found == (expected if reached else [])


def test_milestones_are_reported_in_the_order_of_the_rules_file() -> None:
    # GIVEN three rules that a busy week reaches, listed streak first
    rules = rules_of(STREAK, WINDOW_TOTAL, ACTIVE_DAYS)
    stats = make_stats(consecutive(1, 7, per_day=2))

    # WHEN the rules evaluate the stats
    found = evaluate(rules, stats)

    # THEN the reached milestones follow the file's order
    assert [item.milestone_id for item in found] == ["streak-3", "ten-messages", "active-3"]


# ---------------------------------------------------------------------------
# Streaks: order, zero days, gaps and minimum per day
# ---------------------------------------------------------------------------


def test_streak_and_active_days_ignore_the_order_of_daily_stats_and_listed_zero_days() -> None:
    # GIVEN a history with runs of 2, 4 and 3 active days between inactive ones
    history = {**consecutive(1, 2), **consecutive(5, 4), **consecutive(12, 3)}
    rules = rules_of(
        {"id": "streak-4", "title": "Four", "kind": "streak", "days": 4},
        {"id": "streak-5", "title": "Five", "kind": "streak", "days": 5},
        {"id": "active-9", "title": "Nine", "kind": "active_days", "days": 9},
    )
    streak_4, streak_5, active_9 = rules.milestones
    shuffler = random.Random(SEED)

    for zero_fill in (False, True):
        listed = list(make_stats(history, start="2025-08-01", end="2025-08-20", zero_fill=zero_fill).daily_stats)
        for _ in range(50):
            # WHEN the same days arrive in another order, with or without the inactive days listed
            shuffler.shuffle(listed)
            stats = make_stats(
                {day.date.isoformat(): {"messages": day.messages} for day in listed},
                start="2025-08-01",
                end="2025-08-20",
            )

            # THEN the longest streak and the active days are the same
            assert measure(streak_4, stats) == 4
            assert measure(active_9, stats) == 9
            assert [item.milestone_id for item in evaluate(rules, stats)] == ["streak-4", "active-9"]
            assert measure(streak_5, stats) == 4


def test_newest_first_zero_filled_days_read_like_oldest_first() -> None:
    # GIVEN the sibling endpoint's layout: every day listed, newest first
    history = {**consecutive(1, 3), **consecutive(8, 2)}
    oldest_first = make_stats(history, start="2025-08-01", end="2025-08-10", zero_fill=True)
    newest_first = make_stats(
        {day.date.isoformat(): day.messages for day in sorted(oldest_first.daily_stats, key=lambda d: d.date)[::-1]}
    )

    # WHEN a streak rule measures both
    rule = StreakRule(id="streak-2", title="Two", kind="streak", days=2)

    # THEN they measure alike
    assert measure(rule, oldest_first) == measure(rule, newest_first) == 3


def test_a_missing_day_breaks_a_streak() -> None:
    # GIVEN six days of activity with August 4th not listed at all
    stats = make_stats(on_days(1, 2, 3, 5, 6, 7, 8))
    rules = rules_of({"id": "streak-5", "title": "Five", "kind": "streak", "days": 5})

    # WHEN the streak is measured
    # THEN the missing day counts as inactive and splits the run
    assert measure(rules.milestones[0], stats) == 4
    assert evaluate(rules, stats) == []


def test_streak_counts_only_days_with_min_per_day() -> None:
    # GIVEN five consecutive days, the middle one with a single message
    stats = make_stats({**consecutive(1, 2, per_day=2), **on_days(3, per_day=1), **consecutive(4, 2, per_day=3)})

    # WHEN streaks with a minimum of one and of two per day are measured
    loose = StreakRule(id="loose", title="Loose", kind="streak", days=5)
    strict = StreakRule(id="strict", title="Strict", kind="streak", days=5, min_per_day=2)

    # THEN the day below the minimum breaks only the strict streak
    assert measure(loose, stats) == 5
    assert measure(strict, stats) == 2


def test_active_days_count_only_days_with_min_per_day() -> None:
    # GIVEN four active days, two of them with three messages
    stats = make_stats({**on_days(1, 9, per_day=1), **on_days(3, 20, per_day=3)})

    # WHEN active days with a minimum of three per day are measured
    rule = ActiveDaysRule(id="busy", title="Busy", kind="active_days", days=2, min_per_day=3)

    # THEN only the two busy days count
    assert measure(rule, stats) == 2


def test_measure_refuses_an_object_that_is_not_a_rule() -> None:
    # GIVEN something that is not a milestone rule
    # WHEN it is measured
    # THEN the error names its type
    with pytest.raises(TypeError, match="no measure for dict"):
        measure({"kind": "streak"}, make_stats({"2025-08-18": 1}))


def test_longest_run_of_no_days_is_zero_and_of_scattered_days_one() -> None:
    # GIVEN no days, and days that never touch each other
    scattered = {date(2025, 8, 1), date(2025, 8, 3), date(2025, 8, 5)}

    # WHEN the longest runs are measured
    # THEN they are 0 and 1
    assert longest_run(set()) == 0
    assert longest_run(scattered) == 1


def test_longest_run_crosses_month_and_year_boundaries() -> None:
    # GIVEN a run from December 30th to January 2nd
    days = {date(2024, 12, 30) + timedelta(days=offset) for offset in range(4)}

    # WHEN its length is measured
    # THEN calendar days, not day numbers, make the run
    assert longest_run(days) == 4


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def test_activity_sums_every_metric() -> None:
    # GIVEN one action of each kind on each of two days
    stats = make_stats(on_days(1, 2, per_day={"messages": 1, "replies": 1, "reaction": 1, "socials": 1}))
    rules = rules_of(
        {"id": "busy", "title": "Busy", "kind": "window_total", "metric": "activity", "threshold": 8},
        {"id": "chatty", "title": "Chatty", "kind": "window_total", "metric": "messages", "threshold": 3},
    )

    # WHEN the rules evaluate the stats
    found = evaluate(rules, stats)

    # THEN activity counts all eight actions, messages only two
    assert [(item.milestone_id, item.value) for item in found] == [("busy", 8)]
    assert measure(rules.milestones[1], stats) == 2


def test_activity_streak_counts_a_day_with_only_reactions_or_socials() -> None:
    # GIVEN three consecutive days active through a different metric each
    stats = make_stats({**on_days(1, per_day={"socials": 1}), **on_days(2, per_day={"reaction": 1}), **on_days(3)})

    # WHEN an activity streak is measured
    rule = StreakRule(id="streak-3", title="Three", kind="streak", days=3)

    # THEN every day counts
    assert measure(rule, stats) == 3


def test_reactions_metric_reads_the_platforms_singular_reaction() -> None:
    # GIVEN a response whose reactions arrive under the platform's key `reaction`
    stats = make_stats(consecutive(1, 5, per_day={"reaction": 10}))
    rules = rules_of(
        {"id": "crowd-pleaser", "title": "Fifty", "kind": "window_total", "metric": "reactions", "threshold": 50},
        {"id": "reacting", "title": "Five", "kind": "streak", "metric": "reactions", "days": 5, "min_per_day": 10},
    )

    # WHEN the rules evaluate it
    found = evaluate(rules, stats)

    # THEN both the total and the daily reactions are read
    assert [(item.milestone_id, item.value) for item in found] == [("crowd-pleaser", 50), ("reacting", 5)]


def test_window_total_reads_the_platforms_totals_rather_than_the_listed_days() -> None:
    # GIVEN a response whose totals cover more than its listed days
    stats = make_stats(on_days(1, per_day=2), totals={"messages": 12, "replies": 0, "reaction": 0, "socials": 0})

    # WHEN a window total is measured
    rule = WindowTotalRule(id="ten", title="Ten", kind="window_total", metric="messages", threshold=10)

    # THEN the platform's totals decide
    assert measure(rule, stats) == 12


# ---------------------------------------------------------------------------
# Invalid rules files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\nmilestones:\n  - id: odd\n    title: Odd\n    kind: level\n    threshold: 1\n",
            "does not match any of the expected tags",
            id="unknown-kind",
        ),
        pytest.param(
            f"version: 1\nmilestones:{VALID_RULE}{VALID_RULE}",
            "milestone ids must be unique; repeated: first-steps",
            id="duplicate-ids",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - id: Streak_3\n    title: Bad\n    kind: streak\n    days: 3\n",
            "milestones.0.streak.id",
            id="bad-id-pattern",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - id: zero\n    title: Zero\n    kind: window_total\n    threshold: 0\n",
            "milestones.0.window_total.threshold: Input should be greater than 0",
            id="threshold-zero",
        ),
        pytest.param(
            f"version: 1\nmilestones:{VALID_RULE}    reward: gold\n",
            "milestones.0.window_total.reward: Extra inputs are not permitted",
            id="extra-field",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - id: m\n    title: M\n    kind: window_total\n"
            "    metric: karma\n    threshold: 1\n",
            "milestones.0.window_total.metric",
            id="unknown-metric",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - id: s\n    title: S\n    kind: streak\n    days: 1\n",
            "milestones.0.streak.days: Input should be greater than or equal to 2",
            id="one-day-streak",
        ),
        pytest.param(f"version: 2\nmilestones:{VALID_RULE}", "version: Input should be 1", id="unknown-version"),
        pytest.param(
            "version: 1\nmilestones: []\n", "milestones: List should have at least 1 item", id="no-milestones"
        ),
        pytest.param("", "holds invalid rules", id="empty-file"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    # GIVEN a rules file that breaks one rule of the format
    path = write_rules(tmp_path, text)

    # WHEN it is loaded
    with pytest.raises(RulesError) as raised:
        load_rules(path)

    # THEN the error names the file and the reason
    assert str(path) in str(raised.value)
    assert "holds invalid rules" in str(raised.value)
    assert message in str(raised.value)


def test_invalid_yaml_is_refused_as_not_yaml(tmp_path: Path) -> None:
    # GIVEN a rules file that is not YAML
    path = write_rules(tmp_path, "version: 1\nmilestones: [\n  - id: broken\n")

    # WHEN it is loaded
    with pytest.raises(RulesError) as raised:
        load_rules(path)

    # THEN the error says so and names the file
    assert f"{path} is not valid YAML" in str(raised.value)


def test_a_missing_rules_file_is_refused_as_unreadable(tmp_path: Path) -> None:
    # GIVEN a path where no file exists
    path = tmp_path / "absent.yaml"

    # WHEN it is loaded
    with pytest.raises(RulesError) as raised:
        load_rules(path)

    # THEN the error says the file cannot be read, and why
    assert str(raised.value) == f"cannot read the rules file {path}: No such file or directory"


def test_a_rules_file_that_is_not_utf8_is_refused_as_a_rules_error(tmp_path: Path) -> None:
    # GIVEN a rules file saved in Latin-1 by an editor ("Café" as a title)
    path = tmp_path / "rules.yaml"
    path.write_bytes(
        b"version: 1\nmilestones:\n  - id: cafe\n    title: Caf\xe9\n    kind: window_total\n    threshold: 1\n"
    )

    # WHEN it is loaded
    # THEN it is refused with a RulesError naming the file, like every other unusable rules file
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert str(path) in str(raised.value)


def test_rules_errors_are_configuration_errors() -> None:
    # GIVEN the error hierarchy
    # WHEN a caller catches configuration errors
    # THEN an invalid rules file is one of them
    assert issubclass(RulesError, ConfigurationError)


def test_a_valid_rules_file_loads(tmp_path: Path) -> None:
    # GIVEN a small but valid rules file
    path = write_rules(tmp_path, f"version: 1\nmilestones:{VALID_RULE}")

    # WHEN it is loaded
    rules = load_rules(path)

    # THEN it holds the rule with its defaults
    assert rules.milestones == [
        WindowTotalRule(id="first-steps", title="First activity", kind="window_total", threshold=1)
    ]
    assert rules.milestones[0].metric == "activity"


# ---------------------------------------------------------------------------
# Rules against the stats window
# ---------------------------------------------------------------------------


def test_check_window_refuses_day_rules_longer_than_the_window() -> None:
    # GIVEN a streak and an active-days rule that need 31 days, and a window total
    rules = rules_of(
        {"id": "streak-31", "title": "Long streak", "kind": "streak", "days": 31},
        {"id": "active-31", "title": "Long activity", "kind": "active_days", "days": 31},
        {"id": "total-500", "title": "Many", "kind": "window_total", "threshold": 500},
    )

    # WHEN they are checked against a 30-day window
    with pytest.raises(RulesError) as raised:
        rules.check_window(30)

    # THEN both day rules are named, and nothing else
    assert str(raised.value) == "milestones need more days than the 30-day stats window: streak-31, active-31"


def test_check_window_accepts_a_streak_as_long_as_the_window() -> None:
    # GIVEN a 30-day streak
    rules = rules_of({"id": "streak-30", "title": "A month", "kind": "streak", "days": 30})

    # WHEN it is checked against a 30-day window
    # THEN it is accepted, and refused against a 29-day one
    rules.check_window(30)
    with pytest.raises(RulesError, match="streak-30"):
        rules.check_window(29)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param(
            "version: 1\nmilestones:\n  - {id: m, title: M, kind: window_total, threshold: true}\n",
            "milestones.0.window_total.threshold",
            id="boolean-threshold",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - {id: m, title: M, kind: streak, days: '7'}\n",
            "milestones.0.streak.days",
            id="quoted-days",
        ),
        pytest.param(
            "version: 1\nmilestones:\n  - id: m\n    title: M\n    kind: window_total\n"
            "    threshold: 5\n    threshold: 50\n",
            "duplicate key 'threshold'",
            id="duplicate-key",
        ),
    ],
)
def test_ambiguous_rules_are_refused(tmp_path: Path, document: str, reason: str) -> None:
    # GIVEN a rules file that a reader could take two ways
    path = tmp_path / "rules.yaml"
    path.write_text(document, encoding="utf-8")

    # WHEN it is loaded
    with pytest.raises(RulesError) as raised:
        load_rules(path)

    # THEN it is refused, naming the problem
    assert reason in str(raised.value)


def test_yaml_merge_keys_share_settings_between_rules(tmp_path: Path) -> None:
    # GIVEN a rule that reuses another through a YAML merge key and overrides keys after the merge
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\n"
        "milestones:\n"
        "  - &ten {id: ten, title: Ten, kind: window_total, metric: messages, threshold: 10}\n"
        "  - {<<: *ten, id: fifty, title: Fifty, threshold: 50}\n",
        encoding="utf-8",
    )

    # WHEN they are loaded
    rules = load_rules(path)

    # THEN the merge is taken and the explicit keys win
    fifty = rules.milestones[1]
    assert isinstance(fifty, WindowTotalRule)
    assert (fifty.id, fifty.metric, fifty.threshold) == ("fifty", "messages", 50)
