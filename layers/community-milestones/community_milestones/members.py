"""Members of the community and the work items that ask for their evaluation."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
IdentifierType = Literal["userId", "email"]
Trigger = Literal["webhook", "scan"]


class MemberRef(BaseModel):
    """How the platform identifies a member: a user id (opaque string) or an email address."""

    model_config = ConfigDict(frozen=True)

    identifier: str = Field(min_length=1, max_length=320)
    identifier_type: IdentifierType = "userId"

    @model_validator(mode="after")
    def _normalise(self) -> Self:
        identifier = self.identifier.strip()
        if self.identifier_type == "email":
            identifier = identifier.lower()
        if not identifier:
            raise ValueError("identifier is blank")
        if self.identifier_type == "email" and not EMAIL_PATTERN.fullmatch(identifier):
            raise ValueError("not an email address")
        object.__setattr__(self, "identifier", identifier)
        return self

    @property
    def key(self) -> str:
        """A stable key for storage: the identifier type and the identifier."""
        return f"{self.identifier_type}#{self.identifier}"


class EvaluationRequest(BaseModel):
    """One unit of work on the queue: evaluate a member's milestones."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    member: MemberRef
    trigger: Trigger
    requested_at: datetime
    correlation_id: str = Field(min_length=1, max_length=256)
    event_type: str | None = None
    community_id: str | None = None
