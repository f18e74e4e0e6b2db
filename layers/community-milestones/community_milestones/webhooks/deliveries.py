"""Parsing of webhook bodies whose exact fields the platform does not publish.

The user is accepted under any of its likely spellings: first `userId`, `user_id`, `user.id`,
`user.userId` or `user._id`; then `email` or `user.email`; a bare top-level `id` last, since it
may name the event. The community is read from `communityId`, `serverId`, `server_id`,
`community.id` or `server.id`. Anything else in the body is ignored.
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
USER_ID_PATHS = (("userId",), ("user_id",), ("user", "id"), ("user", "userId"), ("user", "_id"))
EMAIL_PATHS = (("email",), ("user", "email"))
BARE_ID_PATHS = (("id",),)
"""A top-level `id` may name the event rather than the user: it is the last resort."""
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

    member = _member(payload)
    community_id = _first_scalar(payload, COMMUNITY_PATHS)
    if community_id is not None and len(community_id) > MAX_ID_LENGTH:
        raise MalformedDelivery(f"the community id is longer than {MAX_ID_LENGTH} characters")
    return Delivery(member=member, community_id=community_id)


def _member(payload: dict[str, Any]) -> MemberRef:
    """The user the delivery names: an explicit user id, else an email address, else a bare `id`."""
    candidates = (
        (_first_scalar(payload, USER_ID_PATHS), "userId"),
        (_first_scalar(payload, EMAIL_PATHS), "email"),
        (_first_scalar(payload, BARE_ID_PATHS), "userId"),
    )
    for identifier, identifier_type in candidates:
        if identifier is None:
            continue
        try:
            return MemberRef.model_validate({"identifier": identifier, "identifier_type": identifier_type})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise MalformedDelivery(f"the user's {identifier_type} is unusable: {reason}") from None
    raise MalformedDelivery(
        "no user identifier found (userId, user_id, user.id, user.userId, user._id, email, user.email or id)"
    )


def _first_scalar(payload: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> str | None:
    """The first path that leads to a non-empty string or integer, as a string."""
    for path in paths:
        value: Any = payload
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            text = str(value).strip()
            if not text.isprintable() or _has_surrogates(text):
                raise MalformedDelivery(f"the {'.'.join(path)} field holds characters that are not printable text")
            return text
    return None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
