"""The rules file: which milestones exist and what reaches each one."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from community_milestones.errors import RulesError, describe

Metric = Literal["messages", "replies", "reactions", "socials", "activity"]
MilestoneId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Positive = Annotated[int, Field(strict=True, gt=0)]
"""A whole number above zero, written as one: `true` or `"10"` is a mistake in a rules file."""
DEFAULT_RULES = "default.yaml"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: MilestoneId
    title: str = Field(min_length=1, max_length=200)
    metric: Metric = "activity"


class WindowTotalRule(_Rule):
    """Reached when the metric's total over the stats window reaches `threshold`."""

    kind: Literal["window_total"]
    threshold: Positive


class StreakRule(_Rule):
    """Reached after `days` consecutive calendar days with at least `min_per_day` of the metric."""

    kind: Literal["streak"]
    days: Annotated[int, Field(strict=True, ge=2)]
    min_per_day: Positive = 1


class ActiveDaysRule(_Rule):
    """Reached after `days` calendar days in the window, not necessarily consecutive, with activity."""

    kind: Literal["active_days"]
    days: Positive
    min_per_day: Positive = 1


MilestoneRule = Annotated[WindowTotalRule | StreakRule | ActiveDaysRule, Field(discriminator="kind")]


class RuleSet(BaseModel):
    """Every milestone of the community, each identified by a stable id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    milestones: list[MilestoneRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [rule.id for rule in self.milestones]
        repeated = sorted({milestone_id for milestone_id in ids if ids.count(milestone_id) > 1})
        if repeated:
            raise ValueError(f"milestone ids must be unique; repeated: {', '.join(repeated)}")
        return self

    def check_window(self, window_days: int) -> None:
        """Refuse rules that a window of `window_days` days can never reach.

        Raises:
            RulesError: naming the unreachable milestones.
        """
        unreachable = [
            rule.id
            for rule in self.milestones
            if isinstance(rule, StreakRule | ActiveDaysRule) and rule.days > window_days
        ]
        if unreachable:
            raise RulesError(
                f"milestones need more days than the {window_days}-day stats window: {', '.join(unreachable)}"
            )


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *base` then an explicit key is an override, not a repetition.
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file; without a path, the packaged default set.

    Raises:
        RulesError: the file is missing, is not YAML or does not describe valid rules.
    """
    try:
        if path is None:
            text = resources.files("community_milestones.rules").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
            source = f"the default rules ({DEFAULT_RULES})"
        else:
            text = path.read_text(encoding="utf-8")
            source = str(path)
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RulesError(f"the rules file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc

    try:
        document = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        return RuleSet.model_validate(document)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise RulesError(f"{source} holds invalid rules: {describe(exc)}") from None
