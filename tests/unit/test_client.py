"""The Returning.AI client with the network faked at the transport: requests, key rotation, errors and secrecy."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from community_milestones.errors import (
    ContractViolation,
    MemberNotFound,
    PlatformAuthError,
    PlatformError,
    PlatformRequestRejected,
    PlatformUnavailable,
)
from community_milestones.members import MemberRef
from community_milestones.returning_ai.client import ReturningAIClient, parse_retry_after

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "stats_seed_response.json"
SEED_RESPONSE = FIXTURE.read_bytes()

BASE_URL = "http://127.0.0.1:8080/apis/v1"
STATS_URL = f"{BASE_URL}/users/activity/stats"
OLD_KEY = "rai_old_0b1c2d3e4f5a6b7c8d9e"
NEW_KEY = "rai_new_9f8e7d6c5b4a39281706"
MEMBER = MemberRef(identifier="188055")

Handler = Callable[[httpx.Request], httpx.Response]


class RotatingKey:
    """A token provider that hands out the old key until asked to refresh, then the new one."""

    def __init__(self, *, rotated: bool = True) -> None:
        self.calls: list[bool] = []
        self._rotated = rotated

    def __call__(self, *, refresh: bool = False) -> str:
        self.calls.append(refresh)
        return NEW_KEY if refresh and self._rotated else OLD_KEY


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._responses.pop(0) if len(self._responses) > 1 else self._responses[0]
        if isinstance(answer, Exception):
            raise answer
        # A transport answers each request with a response of its own, as a server would.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def ok() -> httpx.Response:
    return httpx.Response(200, content=SEED_RESPONSE, headers={"Content-Type": "application/json"})


def failure(status: int, message: str | None = None, **headers: str) -> httpx.Response:
    body = {"status": "error", "message": message} if message is not None else {"status": "error"}
    return httpx.Response(status, json=body, headers=headers)


def make_client(
    recorder: Recorder, *, token: RotatingKey | None = None, base_url: str = BASE_URL, days: int = 30
) -> ReturningAIClient:
    return ReturningAIClient(
        base_url, token=token or RotatingKey(), days=days, timeout=2.0, transport=httpx.MockTransport(recorder)
    )


def stats_body(**data_changes: Any) -> bytes:
    envelope = json.loads(SEED_RESPONSE)
    envelope["data"].update(data_changes)
    return json.dumps(envelope).encode()


def error_chain(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


def assert_keys_hidden(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    for raised in error_chain(error):
        assert OLD_KEY not in str(raised)
        assert NEW_KEY not in str(raised)
        assert OLD_KEY not in repr(raised)
    assert OLD_KEY not in caplog.text
    assert NEW_KEY not in caplog.text
    for record in caplog.records:
        assert OLD_KEY not in repr(record.__dict__)
        assert NEW_KEY not in repr(record.__dict__)


@pytest.fixture(autouse=True)
def _capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# --- the request ---------------------------------------------------------------------------------------------


def test_request_is_a_bearer_post_to_the_stats_path() -> None:
    # GIVEN a platform that answers with the seed example
    recorder = Recorder(ok())
    client = make_client(recorder)

    # WHEN a member's stats are fetched
    stats = client.fetch_activity_stats(MEMBER)

    # THEN one POST went to the stats path, with the key and the documented body
    assert stats.user_id == "188055"
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == STATS_URL
    assert request.headers["Authorization"] == f"Bearer {OLD_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"identifier": "188055", "identifier_type": "userId", "days": 30}


def test_email_member_is_sent_as_an_email_identifier() -> None:
    # GIVEN a member known by email
    recorder = Recorder(ok())
    client = make_client(recorder)
    member = MemberRef(identifier="Ana@Example.com", identifier_type="email")

    # WHEN the stats are fetched
    client.fetch_activity_stats(member)

    # THEN the body names the email identifier type, with the normalised address
    body = json.loads(recorder.requests[0].content)
    assert body == {"identifier": "ana@example.com", "identifier_type": "email", "days": 30}


@pytest.mark.parametrize("base_url", [BASE_URL, f"{BASE_URL}/", f"{BASE_URL}//"])
def test_base_url_with_or_without_trailing_slash(base_url: str) -> None:
    # GIVEN a base URL written with or without a trailing slash
    recorder = Recorder(ok())
    client = make_client(recorder, base_url=base_url)

    # WHEN the stats are fetched
    client.fetch_activity_stats(MEMBER)

    # THEN the path keeps the base URL's prefix and has no doubled slash
    assert str(recorder.requests[0].url) == STATS_URL


@pytest.mark.parametrize("days", [1, 7, 90])
def test_configured_window_is_sent(days: int) -> None:
    # GIVEN a client configured with a window
    recorder = Recorder(ok())
    client = make_client(recorder, days=days)

    # WHEN the stats are fetched
    client.fetch_activity_stats(MEMBER)

    # THEN that window is asked for
    assert json.loads(recorder.requests[0].content)["days"] == days


def test_client_closes_cleanly() -> None:
    # GIVEN a client that has made a request
    recorder = Recorder(ok())
    client = make_client(recorder)
    client.fetch_activity_stats(MEMBER)

    # WHEN it is closed
    client.close()

    # THEN it cannot be used again
    with pytest.raises(RuntimeError):
        client.fetch_activity_stats(MEMBER)


# --- the key -------------------------------------------------------------------------------------------------


def test_refused_key_is_read_again_and_the_rotated_key_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that refuses the old key once, and a secret that now holds a new key
    recorder = Recorder(failure(401, "Invalid API key"), ok())
    token = RotatingKey()
    client = make_client(recorder, token=token)

    # WHEN the stats are fetched
    stats = client.fetch_activity_stats(MEMBER)

    # THEN the key was read again bypassing the cache, and the retry carried the new key
    assert stats.totals.replies == 1
    assert token.calls == [False, True]
    assert [request.headers["Authorization"] for request in recorder.requests] == [
        f"Bearer {OLD_KEY}",
        f"Bearer {NEW_KEY}",
    ]
    assert OLD_KEY not in caplog.text
    assert NEW_KEY not in caplog.text


def test_key_refused_twice_is_an_auth_error(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that refuses every key
    recorder = Recorder(failure(401, "Invalid API key"))
    token = RotatingKey()
    client = make_client(recorder, token=token)

    # WHEN the stats are fetched
    with pytest.raises(PlatformAuthError) as caught:
        client.fetch_activity_stats(MEMBER)

    # THEN exactly one fresh read was tried, and the error says the key was refused
    assert token.calls == [False, True]
    assert len(recorder.requests) == 2
    assert caught.value.status_code == 401
    assert "refused" in str(caught.value)
    assert "Invalid API key" in str(caught.value)
    assert_keys_hidden(caught.value, caplog)


def test_missing_permission_is_an_auth_error_without_a_retry(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a key without the stats permission
    recorder = Recorder(failure(403, "Forbidden"))
    token = RotatingKey()
    client = make_client(recorder, token=token)

    # WHEN the stats are fetched
    with pytest.raises(PlatformAuthError) as caught:
        client.fetch_activity_stats(MEMBER)

    # THEN the error names the missing permission, and the key was not read again
    assert caught.value.status_code == 403
    assert "Get User Stats" in str(caught.value)
    assert "permission" in str(caught.value)
    assert token.calls == [False]
    assert len(recorder.requests) == 1
    assert_keys_hidden(caught.value, caplog)


def test_refresh_then_missing_permission_is_reported_as_403() -> None:
    # GIVEN a platform that refuses the old key and finds the new one lacks the permission
    recorder = Recorder(failure(401), failure(403))

    # WHEN the stats are fetched
    with pytest.raises(PlatformAuthError) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the final answer is what is reported
    assert caught.value.status_code == 403


# --- error answers -------------------------------------------------------------------------------------------


def test_bad_request_mentions_the_window(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that refuses the configured window
    recorder = Recorder(failure(400, "days must be between 1 and 90"))
    client = make_client(recorder, days=400)

    # WHEN the stats are fetched
    with pytest.raises(PlatformRequestRejected) as caught:
        client.fetch_activity_stats(MEMBER)

    # THEN the error names the window sent and the platform's reason, and is not retryable
    message = str(caught.value)
    assert "days=400" in message
    assert "days must be between 1 and 90" in message
    assert caught.value.status_code == 400
    assert not caught.value.retryable
    assert_keys_hidden(caught.value, caplog)


def test_unknown_member_is_member_not_found(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that does not know the member
    recorder = Recorder(failure(404, "User not found"))

    # WHEN the stats are fetched
    with pytest.raises(MemberNotFound) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error names the member and is not retryable
    assert caught.value.status_code == 404
    assert MEMBER.key in str(caught.value)
    assert "User not found" in str(caught.value)
    assert not caught.value.retryable
    assert_keys_hidden(caught.value, caplog)


def test_rate_limit_with_seconds_gives_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that rate limits with a delay in seconds
    recorder = Recorder(failure(429, "Too many requests", **{"Retry-After": "17"}))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error is retryable and carries the delay
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 17.0
    assert caught.value.retryable
    assert len(recorder.requests) == 1
    assert_keys_hidden(caught.value, caplog)


def test_rate_limit_with_an_http_date_gives_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that rate limits until a moment two minutes away
    until = datetime.now(UTC) + timedelta(seconds=120)
    recorder = Recorder(failure(429, "slow down", **{"Retry-After": format_datetime(until, usegmt=True)}))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the delay is about two minutes
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120
    assert_keys_hidden(caught.value, caplog)


def test_rate_limit_without_retry_after() -> None:
    # GIVEN a platform that rate limits without saying for how long
    recorder = Recorder(failure(429))

    # WHEN / THEN the error is retryable with no delay given
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)
    assert caught.value.retry_after is None


def test_rate_limit_with_a_non_ascii_digit_in_retry_after_stays_a_platform_error() -> None:
    # GIVEN a platform whose Retry-After holds a byte that decodes to a superscript digit
    response = httpx.Response(429, headers=[(b"Retry-After", b"\xb2")], text="slow down")
    recorder = Recorder(response)

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN it is still a rate limit, with no usable delay
    assert caught.value.status_code == 429
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_is_unavailable(status: int, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform failing on its side
    recorder = Recorder(failure(status, "Internal server error"))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error is retryable and carries the status
    assert caught.value.status_code == status
    assert caught.value.retryable
    assert "Internal server error" in str(caught.value)
    assert_keys_hidden(caught.value, caplog)


def test_other_status_is_a_plain_platform_error(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform answering with a conflict
    recorder = Recorder(failure(409, "Conflict"))

    # WHEN the stats are fetched
    with pytest.raises(PlatformError) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error is the base kind, with the status
    assert type(caught.value) is PlatformError
    assert caught.value.status_code == 409
    assert_keys_hidden(caught.value, caplog)


def test_redirect_is_not_followed() -> None:
    # GIVEN a platform that redirects elsewhere
    recorder = Recorder(httpx.Response(302, headers={"Location": "http://127.0.0.1:9/elsewhere"}))

    # WHEN the stats are fetched
    with pytest.raises(PlatformError) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the key was sent nowhere else
    assert caught.value.status_code == 302
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_network_error_is_unavailable(fault: Exception, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that cannot be reached
    recorder = Recorder(fault)

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error is retryable, says what failed and keeps the cause
    assert "could not be reached" in str(caught.value)
    assert type(fault).__name__ in str(caught.value)
    assert caught.value.__cause__ is fault
    assert caught.value.retryable
    assert caught.value.status_code is None
    assert_keys_hidden(caught.value, caplog)


@pytest.mark.parametrize(
    "fault", [httpx.ConnectTimeout("connect timeout"), httpx.ReadTimeout("read timeout"), httpx.PoolTimeout("pool")]
)
def test_timeout_is_unavailable(fault: Exception, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform that does not answer in time
    recorder = Recorder(fault)

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error says so and is retryable
    assert "did not answer in time" in str(caught.value)
    assert caught.value.retryable
    assert_keys_hidden(caught.value, caplog)


def test_network_error_on_the_retry_after_401_is_unavailable() -> None:
    # GIVEN a platform that refuses the key and then drops the connection
    recorder = Recorder(failure(401), httpx.ConnectError("connection refused"))

    # WHEN / THEN the failure is reported as unavailable
    with pytest.raises(PlatformUnavailable):
        make_client(recorder).fetch_activity_stats(MEMBER)


# --- error bodies --------------------------------------------------------------------------------------------


def test_error_body_without_json_falls_back_to_the_raw_text() -> None:
    # GIVEN a gateway answering with plain text
    recorder = Recorder(httpx.Response(502, text="<html>Bad Gateway from the edge</html>"))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the raw text is the reason
    assert "<html>Bad Gateway from the edge</html>" in str(caught.value)


def test_json_error_body_without_message_falls_back_to_the_raw_text() -> None:
    # GIVEN an error body that is JSON but has no message
    recorder = Recorder(httpx.Response(500, json={"error": "db down"}))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the raw text is the reason
    assert '"db down"' in str(caught.value)


def test_empty_error_body_falls_back_to_the_reason_phrase() -> None:
    # GIVEN an error with no body at all
    recorder = Recorder(httpx.Response(503))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the reason phrase stands in
    assert "Service Unavailable" in str(caught.value)


def test_long_error_body_is_shortened() -> None:
    # GIVEN a very long error body
    recorder = Recorder(httpx.Response(500, text="x" * 10_000))

    # WHEN the stats are fetched
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the reason is cut short
    assert len(str(caught.value)) < 400


# --- the response contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not json at all", b"", b'{"status": "success", "data": '])
def test_malformed_json_is_a_contract_violation(content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a 200 whose body is not JSON
    recorder = Recorder(httpx.Response(200, content=content))

    # WHEN the stats are fetched
    with pytest.raises(ContractViolation) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error says the contract is broken, and says how
    assert "breaks the contract" in str(caught.value)
    assert "JSON" in str(caught.value)
    assert not caught.value.retryable
    assert_keys_hidden(caught.value, caplog)


@pytest.mark.parametrize("field", ["user_id", "range", "totals"])
def test_missing_field_is_a_contract_violation(field: str, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a 200 whose data lacks a required field
    envelope = json.loads(SEED_RESPONSE)
    del envelope["data"][field]
    recorder = Recorder(httpx.Response(200, json=envelope))

    # WHEN the stats are fetched
    with pytest.raises(ContractViolation) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error names the field's place in the response
    assert f"data.{field}: Field required" in str(caught.value)
    assert_keys_hidden(caught.value, caplog)


def test_missing_data_is_a_contract_violation() -> None:
    # GIVEN a success envelope without data
    recorder = Recorder(httpx.Response(200, json={"status": "success", "message": "done"}))

    # WHEN / THEN the error names the missing data
    with pytest.raises(ContractViolation, match="data: Field required"):
        make_client(recorder).fetch_activity_stats(MEMBER)


def test_negative_count_is_a_contract_violation(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a 200 with a negative count in a day
    day = {"date": "2025-08-18", "messages": -4, "replies": 1, "reaction": 0, "socials": 0}
    recorder = Recorder(httpx.Response(200, content=stats_body(daily_stats=[day])))

    # WHEN the stats are fetched
    with pytest.raises(ContractViolation) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error names the count and the rule it breaks
    assert "data.daily_stats.0.messages" in str(caught.value)
    assert "greater than or equal to 0" in str(caught.value)
    assert_keys_hidden(caught.value, caplog)


def test_day_outside_the_range_is_a_contract_violation() -> None:
    # GIVEN a 200 with a day after the range
    day = {"date": "2025-08-19", "messages": 1, "replies": 0, "reaction": 0, "socials": 0}
    recorder = Recorder(httpx.Response(200, content=stats_body(daily_stats=[day])))

    # WHEN / THEN the error names the day
    with pytest.raises(ContractViolation, match="2025-08-19, outside the range"):
        make_client(recorder).fetch_activity_stats(MEMBER)


def test_error_status_inside_a_200_is_a_contract_violation() -> None:
    # GIVEN a 200 whose envelope says the call failed
    envelope = json.loads(SEED_RESPONSE) | {"status": "error"}
    recorder = Recorder(httpx.Response(200, json=envelope))

    # WHEN / THEN it is not taken for stats
    with pytest.raises(ContractViolation, match="status is 'error'"):
        make_client(recorder).fetch_activity_stats(MEMBER)


def test_contract_violation_does_not_chain_the_validation_error() -> None:
    # GIVEN a 200 that breaks the contract
    recorder = Recorder(httpx.Response(200, content=b"[]"))

    # WHEN the stats are fetched
    with pytest.raises(ContractViolation) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)

    # THEN the error stands alone: the body is not dragged along in a chained exception
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- Retry-After ---------------------------------------------------------------------------------------------

NOW = datetime(2025, 8, 18, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("1", 1.0), ("120", 120.0), ("  30 ", 30.0)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    # GIVEN a delay in seconds
    # WHEN it is parsed
    parsed = parse_retry_after(value, now=NOW)

    # THEN it is that many seconds
    assert parsed == seconds


def test_retry_after_as_an_http_date() -> None:
    # GIVEN a date 90 seconds from now, in the HTTP format
    value = "Mon, 18 Aug 2025 12:01:30 GMT"

    # WHEN it is parsed
    parsed = parse_retry_after(value, now=NOW)

    # THEN it is the seconds until then
    assert parsed == 90.0


def test_retry_after_as_a_date_with_an_offset() -> None:
    # GIVEN a date written with a non-UTC offset, 60 seconds from now
    value = "Mon, 18 Aug 2025 14:01:00 +0200"

    # WHEN / THEN the offset is honoured
    assert parse_retry_after(value, now=NOW) == 60.0


def test_retry_after_as_a_date_without_a_zone_is_read_as_utc() -> None:
    # GIVEN a date whose zone is unknown (-0000)
    value = "Mon, 18 Aug 2025 12:00:45 -0000"

    # WHEN / THEN it is read as UTC
    assert parse_retry_after(value, now=NOW) == 45.0


def test_retry_after_in_the_past_is_zero() -> None:
    # GIVEN a date already gone
    value = "Mon, 18 Aug 2025 11:00:00 GMT"

    # WHEN / THEN there is nothing to wait for
    assert parse_retry_after(value, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1.5", "Mon, 32 Aug 2025 12:00:00 GMT"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    # GIVEN a missing or unusable Retry-After
    # WHEN / THEN no delay is given
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9\u00b2\u00b3"])
def test_retry_after_with_non_ascii_digits_is_none(value: str) -> None:
    # GIVEN a Retry-After made of characters that str.isdigit() accepts but that are not ASCII digits
    # WHEN it is parsed
    parsed = parse_retry_after(value, now=NOW)

    # THEN it is unusable rather than an error
    assert parsed is None


def test_retry_after_defaults_to_the_current_time() -> None:
    # GIVEN a date a minute from the real clock
    value = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    # WHEN it is parsed without an explicit now
    parsed = parse_retry_after(value)

    # THEN it is about a minute
    assert parsed is not None
    assert 50 <= parsed <= 60


@pytest.mark.parametrize("padding", [0, 260, 275], ids=["short", "key-straddles-the-cut", "key-ends-past-the-cut"])
def test_no_fragment_of_a_key_survives_in_an_echoed_error(padding: int, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a platform whose error text echoes both the old and the rotated key, past the length limit
    echo = f"upstream failure {'.' * padding} key={OLD_KEY} then key={NEW_KEY}"
    recorder = Recorder(failure(401, echo))
    client = make_client(recorder)

    # WHEN the stats are fetched
    with pytest.raises(PlatformAuthError) as caught:
        client.fetch_activity_stats(MEMBER)

    # THEN not even the start of either key is in the error
    for key in (OLD_KEY, NEW_KEY):
        assert key[:8] not in str(caught.value)
    assert_keys_hidden(caught.value, caplog)


class _TricklingHandler(BaseHTTPRequestHandler):
    """Answers 200 with a valid-looking body, a few bytes at a time, slower than any deadline."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(SEED_RESPONSE)))
        self.end_headers()
        for start in range(0, len(SEED_RESPONSE), 16):
            try:
                self.wfile.write(SEED_RESPONSE[start : start + 16])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_a_trickling_answer_cannot_outlive_the_timeout() -> None:
    # GIVEN a server on 127.0.0.1 whose every read step is quick but whose whole answer takes seconds
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TricklingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    client = ReturningAIClient(f"http://{host!s}:{port}/apis/v1", token=RotatingKey(), timeout=0.5)

    # WHEN the stats are fetched with a half-second timeout
    started = time.monotonic()
    try:
        with pytest.raises(PlatformUnavailable, match="did not finish answering"):
            client.fetch_activity_stats(MEMBER)
        elapsed = time.monotonic() - started
    finally:
        client.close()
        server.shutdown()
        server.server_close()

    # THEN the call gives up at the deadline, not when the server is done
    assert elapsed < 1.5


def test_an_oversized_answer_breaks_the_contract() -> None:
    # GIVEN a platform answering with more than any stats response could hold
    recorder = Recorder(httpx.Response(200, content=b" " * (2 * 1024 * 1024)))

    # WHEN the stats are fetched, THEN it is refused without reading it all
    with pytest.raises(ContractViolation, match="larger than"):
        make_client(recorder).fetch_activity_stats(MEMBER)


def test_a_request_timeout_is_retryable() -> None:
    # GIVEN a platform answering 408
    recorder = Recorder(failure(408, "Request Timeout"))

    # WHEN the stats are fetched, THEN the failure is worth retrying
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(recorder).fetch_activity_stats(MEMBER)
    assert caught.value.retryable


def test_a_key_escaped_in_a_json_body_is_hidden(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a key with characters JSON escapes, echoed back in a body without a `message`
    key = "rai_live/Ab+cd=="
    body = json.dumps({"error": {"detail": f"key {key} has expired"}}).replace("/", "\\/")
    recorder = Recorder(httpx.Response(401, content=body.encode(), headers={"Content-Type": "application/json"}))
    client = ReturningAIClient(
        BASE_URL, token=lambda *, refresh=False: key, timeout=2.0, transport=httpx.MockTransport(recorder)
    )

    # WHEN the stats are fetched
    with pytest.raises(PlatformAuthError) as caught:
        client.fetch_activity_stats(MEMBER)

    # THEN neither the key nor its escaped form is in the error
    assert "Ab+cd" not in str(caught.value)
    assert "Ab+cd" not in caplog.text
