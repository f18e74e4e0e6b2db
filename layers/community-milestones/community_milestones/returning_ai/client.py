"""A small client for the Returning.AI Integration API's stats endpoint."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx
from pydantic import ValidationError

from community_milestones.errors import (
    ContractViolation,
    MemberNotFound,
    PlatformAuthError,
    PlatformError,
    PlatformRequestRejected,
    PlatformUnavailable,
    describe,
)
from community_milestones.members import MemberRef
from community_milestones.returning_ai.models import ActivityStats, StatsEnvelope

logger = logging.getLogger(__name__)

STATS_PATH = "users/activity/stats"
USER_AGENT = "community-milestones/0.1"
BEARER_PATTERN = re.compile(r"Bearer\s+\S+", re.IGNORECASE)
FRAMING_HEADERS = {b"content-encoding", b"content-length", b"transfer-encoding"}
MAX_RESPONSE_BYTES = 1024 * 1024
"""A year of daily stats is tens of kilobytes; an answer past this is not a stats response."""
MAX_RETRY_AFTER_SECONDS = 12 * 3600.0
"""Keeps a parsed wait finite and plausible; how long the worker actually waits is RetryPolicy's decision."""


class TokenProvider(Protocol):
    """Returns the API key; `refresh=True` asks for a fresh read, bypassing any cache."""

    def __call__(self, *, refresh: bool = False) -> str: ...


class ReturningAIClient:
    """Fetches members' activity stats with the Integration API's Bearer key.

    Parameters:
        base_url: the Integration API root, e.g. ``https://integration.returning.ai/apis/v1``.
        token: where the API key comes from; it is read on each call so a rotated key is picked up.
        days: the stats window in days.
        timeout: seconds allowed for each request.
        transport: an httpx transport, for tests.

    Example::

        client = ReturningAIClient("https://integration.returning.ai/apis/v1", token=provider, days=30)
        stats = client.fetch_activity_stats(MemberRef(identifier="188055"))
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenProvider,
        days: int = 30,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._token = token
        self._timeout = timeout
        self.days = days
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def fetch_activity_stats(self, member: MemberRef) -> ActivityStats:
        """Return the member's activity over the window.

        A 401 is answered once by re-reading the key, so a rotated key needs no redeploy.

        Raises:
            PlatformAuthError, PlatformRequestRejected, MemberNotFound, PlatformUnavailable, ContractViolation
        """
        body = {"identifier": member.identifier, "identifier_type": member.identifier_type, "days": self.days}
        tokens = [self._token()]
        response = self._post(STATS_PATH, body, tokens[0])
        if response.status_code == 401:
            fresh = self._token(refresh=True)
            if fresh != tokens[0]:
                logger.info("api key refused; the secret holds a new one, trying it")
                tokens.append(fresh)
                response = self._post(STATS_PATH, body, fresh)
        self._raise_for_status(response, member, tokens)
        return self._parse_stats(response)

    def _post(self, path: str, body: dict[str, object], token: str) -> httpx.Response:
        """One request that must be answered in full within the timeout.

        httpx applies its timeout to each connect and read step, so a server that trickles a
        response could hold a call far longer; reading the body against one deadline bounds it.
        """
        deadline = time.monotonic() + self._timeout
        request = self._http.build_request("POST", path, json=body, headers={"Authorization": f"Bearer {token}"})
        try:
            response = self._http.send(request, stream=True)
            try:
                content = bytearray()
                for chunk in response.iter_bytes():
                    content.extend(chunk)
                    if time.monotonic() > deadline:
                        raise PlatformUnavailable(f"the platform did not finish answering within {self._timeout:g} s")
                    if len(content) > MAX_RESPONSE_BYTES:
                        raise ContractViolation(f"the platform's answer is larger than {MAX_RESPONSE_BYTES} bytes")
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise PlatformUnavailable(f"the platform did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise PlatformUnavailable(f"the platform could not be reached ({type(exc).__name__})") from exc
        # The body is decoded already: the new response must not claim an encoding or a length of its own.
        headers = [(name, value) for name, value in response.headers.raw if name.lower() not in FRAMING_HEADERS]
        return httpx.Response(response.status_code, headers=headers, content=bytes(content), request=request)

    def _raise_for_status(self, response: httpx.Response, member: MemberRef, tokens: list[str]) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return

        reason = _error_message(response, hide=tokens)
        if status in (401, 403):
            what = "was refused" if status == 401 else "lacks the 'Get User Stats' permission"
            raise PlatformAuthError(f"the API key {what}: {reason}", status_code=status)
        if status == 400:
            raise PlatformRequestRejected(
                f"the platform rejected the stats request (days={self.days}, "
                f"identifier_type={member.identifier_type}): {reason}",
                status_code=status,
            )
        if status == 404:
            raise MemberNotFound(f"the platform does not know member {member.key}: {reason}", status_code=status)
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise PlatformUnavailable(
                f"the platform answered {status}: {reason}", status_code=status, retry_after=retry_after
            )
        raise PlatformError(f"the platform answered {status}: {reason}", status_code=status)

    @staticmethod
    def _parse_stats(response: httpx.Response) -> ActivityStats:
        try:
            return StatsEnvelope.model_validate_json(response.content).data
        except ValidationError as exc:
            raise ContractViolation(f"the stats response breaks the contract: {describe(exc)}") from None


def _error_message(response: httpx.Response, *, hide: list[str]) -> str:
    """The `message` of an error body when there is one, else the raw text, without any key in it.

    Keys are removed from the whole text before it is shortened, so no fragment of one survives.
    """
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        text = str(payload["message"])
    else:
        text = response.text or response.reason_phrase
    for token in hide:
        # The key as sent, and as a JSON body would escape it (quotes, backslashes, "\/").
        escaped = json.dumps(token)[1:-1]
        for form in {token, escaped, escaped.replace("/", "\\/")}:
            text = text.replace(form, "***")
    return BEARER_PATTERN.sub("Bearer ***", text)[:300]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER_SECONDS)
