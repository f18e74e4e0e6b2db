"""Parsing of webhook bodies whose exact fields the platform does not publish.

The user is accepted under any of its likely spellings (`userId`, `user_id`, `user.id`,
`user.userId`, `id`, then `email`) and the community under `communityId`, `serverId` or
`server_id`. Anything else in the body is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from community_milestones.errors import DeliveryTooLarge, MalformedDelivery
from community_milestones.members import MemberRef

MAX_BODY_BYTES = 64 * 1024
"""Deliveries name a user and a community; anything this large is not one."""
MAX_ID_LENGTH = 256
USER_ID_PATHS = (("userId",), ("user_id",), ("user", "id"), ("user", "userId"), ("user", "_id"), ("id",))
EMAIL_PATHS = (("email",), ("user", "email"))
COMMUNITY_PATHS = (("communityId",), ("serverId",), ("server_id",), ("community", "id"), ("server", "id"))


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a delivery tells us: who, and in which community."""

    member: MemberRef
    community_id: str | None


def parse_delivery(body: str | bytes | None) -> Delivery:
    """Turn a webhook body into a delivery.

    Raises:
        MalformedDelivery: the body is not a JSON object or names no usable user.
        DeliveryTooLarge: the body is larger than `MAX_BODY_BYTES`.
    """
    if not body:
        raise MalformedDelivery("the body is empty; a JSON object naming the user is expected")
    if len(body) > MAX_BODY_BYTES:
        raise DeliveryTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedDelivery("the body is not valid JSON") from None
    except RecursionError:
        raise MalformedDelivery("the body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise MalformedDelivery("the body is not a JSON object")

    user_id = _first_scalar(payload, USER_ID_PATHS)
    email = _first_scalar(payload, EMAIL_PATHS)
    try:
        if user_id is not None:
            member = MemberRef(identifier=user_id, identifier_type="userId")
        elif email is not None and "@" in email:
            member = MemberRef(identifier=email, identifier_type="email")
        else:
            raise MalformedDelivery("no user identifier found (userId, user_id, user.id, id or email)")
    except ValidationError:
        raise MalformedDelivery("the user identifier is blank or too long") from None

    community_id = _first_scalar(payload, COMMUNITY_PATHS)
    if community_id is not None and len(community_id) > MAX_ID_LENGTH:
        raise MalformedDelivery(f"the community id is longer than {MAX_ID_LENGTH} characters")
    return Delivery(member=member, community_id=community_id)


def _first_scalar(payload: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> str | None:
    """The first path that leads to a non-empty string or integer, as a string."""
    for path in paths:
        value: Any = payload
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            return str(value).strip()
    return None
