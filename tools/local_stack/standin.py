"""A local HTTP stand-in for the Returning.AI Integration API, backed by a :class:`SeededCommunity`.

It serves the two Integration calls this project makes, with the platform's envelope, bearer authentication and
status codes, and can inject latency, server errors and rate limiting from a seeded RNG so that runs repeat.
It listens on 127.0.0.1 only, on a port the OS chooses.

Example::

    config = StandinConfig(token="local-key", community=SeededCommunity(as_of=date(2025, 8, 18)))
    with ReturningAIStandin(config) as standin:
        httpx.post(f"{standin.base_url}/users/activity/stats", json={...}, headers={...})
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

from local_stack.community import CommunityMember, SeededCommunity

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/apis/v1"
STATS_PATH: Final = f"{API_PREFIX}/users/activity/stats"
INFO_PATH: Final = f"{API_PREFIX}/users/info"
DEFAULT_DAYS: Final = 30
MAX_BODY_BYTES: Final = 64 * 1024
RETRY_AFTER_SECONDS: Final = 1

_HOST: Final = "127.0.0.1"
_IDENTIFIER_TYPES: Final = ("userId", "email")

type JsonObject = dict[str, object]
type _Responder = Callable[[], JsonObject]


@dataclass
class StandinConfig:
    """How the stand-in authenticates, what it serves and which faults it injects.

    Parameters:
        token: the only bearer token accepted.
        community: the members and activity served.
        latency_seconds: delay added to every authenticated stats request.
        error_rate: fraction of authenticated stats requests answered 500.
        rate_limit_rate: fraction of authenticated stats requests answered 429 with ``Retry-After: 1``.
        fault_seed: seeds the RNG that picks which requests fail.
        max_days: the largest ``days`` accepted; larger values get a 400.
    """

    token: str
    community: SeededCommunity
    latency_seconds: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    fault_seed: int = 0
    max_days: int = 365

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("token must not be empty")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must not be negative")
        for name, rate in (("error_rate", self.error_rate), ("rate_limit_rate", self.rate_limit_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.max_days < 1:
            raise ValueError("max_days must be at least 1")


class _RequestError(Exception):
    """A request that ends in a JSON error response."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ReturningAIStandin:
    """Serves the Returning.AI Integration API on 127.0.0.1 from a background thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self._server: _StandinServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._fault_rng = random.Random(config.fault_seed)
        self._status_counts: Counter[int] = Counter()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind to an OS-chosen port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        server = _StandinServer((_HOST, 0), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="returning-ai-standin",
            daemon=True,
        )
        self._thread.start()
        logger.debug("returning.ai stand-in listening", extra={"port": self.port})

    def stop(self) -> None:
        """Stop serving, drop open connections and close the listening socket."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        """The port the stand-in listens on."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The Integration API base URL, e.g. ``http://127.0.0.1:PORT/apis/v1``."""
        return f"http://{_HOST}:{self.port}{API_PREFIX}"

    @property
    def request_count(self) -> int:
        """How many stats requests have been answered, whatever their status."""
        with self._lock:
            return sum(self._status_counts.values())

    @property
    def status_counts(self) -> dict[int, int]:
        """How many stats requests have been answered, by HTTP status."""
        with self._lock:
            return dict(self._status_counts)

    def handle_stats(self, authorization: str | None, body: bytes) -> JsonObject:
        """Answer Get User Gamification Stats, or raise :class:`_RequestError`."""
        self._authenticate(authorization)
        self._inject_faults()

        payload = _parse_object(body)
        identifier = _required_string(payload, "identifier")
        identifier_type = payload.get("identifier_type")
        if identifier_type not in _IDENTIFIER_TYPES:
            raise _RequestError(HTTPStatus.BAD_REQUEST, "identifier_type must be userId or email")
        days = payload.get("days", DEFAULT_DAYS)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= self.config.max_days:
            raise _RequestError(HTTPStatus.BAD_REQUEST, f"days must be between 1 and {self.config.max_days}")

        member = self.config.community.find(identifier, str(identifier_type))
        if member is None:
            raise _RequestError(HTTPStatus.NOT_FOUND, "User not found")
        stats = self.config.community.stats(member, days)
        return _success("User gamification stats fetched successfully", dict(stats))

    def handle_info(self, authorization: str | None, body: bytes) -> JsonObject:
        """Answer Get User Data with a small profile, or raise :class:`_RequestError`."""
        self._authenticate(authorization)

        payload = _parse_object(body)
        id_or_email = _required_string(payload, "idOrEmail")
        community = self.config.community
        member = community.find(id_or_email, "userId") or community.find(id_or_email, "email")
        if member is None:
            raise _RequestError(HTTPStatus.NOT_FOUND, "User not found")
        return _success("User data fetched successfully", self._user_info(member))

    def record_stats_status(self, status: int) -> None:
        """Count one answered stats request."""
        with self._lock:
            self._status_counts[status] += 1

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, credentials = (authorization or "").partition(" ")
        expected = self.config.token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), expected):
            raise _RequestError(HTTPStatus.UNAUTHORIZED, "Unauthorized")

    def _inject_faults(self) -> None:
        # Both draws happen on every request, so one rate does not shift which requests the other picks.
        with self._lock:
            rate_limited = self._fault_rng.random() < self.config.rate_limit_rate
            failed = self._fault_rng.random() < self.config.error_rate

        if self.config.latency_seconds:
            time.sleep(self.config.latency_seconds)
        if rate_limited:
            raise _RequestError(
                HTTPStatus.TOO_MANY_REQUESTS,
                "Too many requests",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if failed:
            raise _RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")

    def _user_info(self, member: CommunityMember) -> JsonObject:
        community = self.config.community
        totals = community.lifetime_totals(member)
        active_days = community.active_days(member)
        xp = 10 * totals["messages"] + 5 * totals["replies"] + 2 * totals["reaction"] + 5 * totals["socials"]
        return {
            "_id": member.user_id,
            "id": member.user_id,
            "email": member.email,
            "username": member.email.partition("@")[0],
            "xp": xp,
            "coins": xp // 10,
            "roles": [],
            "totalMessages": totals["messages"],
            "totalReactions": totals["reaction"],
            "visitCount": len(active_days),
            "loginStreak": _streak_ending(active_days, community.as_of),
            "customFields": {},
        }


class _StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: ReturningAIStandin) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _StandinHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-request is routine here, not worth a traceback on stderr.
        logger.debug("stand-in request failed", exc_info=True)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise hold handler threads after the stand-in stops.
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")


class _StandinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle's algorithm stalls each keep-alive response.
    disable_nagle_algorithm = True
    server_version = "returning-ai-standin"
    sys_version = ""
    server: _StandinServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return

        path = urlsplit(self.path).path
        standin = self.server.standin
        authorization = self.headers.get("Authorization")
        if path == STATS_PATH:
            self._answer(lambda: standin.handle_stats(authorization, body), counted=True)
        elif path == INFO_PATH:
            self._answer(lambda: standin.handle_info(authorization, body))
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error("Not found"))

    def do_GET(self) -> None:
        self._reject_method()

    def do_HEAD(self) -> None:
        self._reject_method()

    def do_PUT(self) -> None:
        self._reject_method()

    def do_PATCH(self) -> None:
        self._reject_method()

    def do_DELETE(self) -> None:
        self._reject_method()

    def do_OPTIONS(self) -> None:
        self._reject_method()

    def log_message(self, format: str, *args: object) -> None:
        # Request lines carry no credentials; headers are never logged.
        logger.debug(format, *args)

    def _answer(self, respond: _Responder, *, counted: bool = False) -> None:
        try:
            status, payload, headers = HTTPStatus.OK, respond(), {}
        except _RequestError as exc:
            status, payload, headers = exc.status, _error(exc.message), exc.headers
        # Count before answering, so a client that reads the counters after its response sees its request.
        if counted:
            self.server.standin.record_stats_status(int(status))
        self._send_json(status, payload, headers)

    def _reject_method(self) -> None:
        if self._read_body() is None:
            return
        if urlsplit(self.path).path in (STATS_PATH, INFO_PATH):
            self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, _error("Method not allowed"), {"Allow": "POST"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error("Not found"))

    def _read_body(self) -> bytes | None:
        """Read the request body; answer and close the connection when it cannot be read safely."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, _error("chunked request bodies are not supported"))
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, _error("invalid Content-Length"))
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("request body too large"))
            return None
        return self.rfile.read(length)

    def _send_json(self, status: HTTPStatus, payload: JsonObject, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _success(message: str, data: JsonObject) -> JsonObject:
    return {"status": "success", "message": message, "data": data}


def _error(message: str) -> JsonObject:
    return {"status": "error", "message": message}


def _parse_object(body: bytes) -> JsonObject:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _RequestError(HTTPStatus.BAD_REQUEST, "request body must be valid JSON") from exc
    if not isinstance(payload, dict):
        raise _RequestError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
    return payload


def _required_string(payload: JsonObject, key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"{key} is required")
    return value


def _streak_ending(active_days: list[date], last_day: date) -> int:
    streak = 0
    expected = last_day
    for day in reversed(active_days):
        if day != expected:
            break
        streak += 1
        expected -= timedelta(days=1)
    return streak
