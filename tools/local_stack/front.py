"""A local front for the HTTP API: real HTTP requests in, API Gateway HTTP API (v2) events out.

It stands where API Gateway stands when deployed: it listens on 127.0.0.1, turns each request
into the payload-format 2.0 event that the webhook function receives, invokes the handler and
writes the handler's response back.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_BODY_BYTES = 1024 * 1024
Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def http_api_event(method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    """The HTTP API payload-format 2.0 event for one request."""
    url = urlsplit(target)
    now = datetime.now(UTC)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "version": "2.0",
        "routeKey": f"{method} {url.path}",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {url.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class HttpApiFront:
    """Serves the webhook function over HTTP on 127.0.0.1; use as a context manager."""

    def __init__(self, invoke: Invoke) -> None:
        self._invoke = invoke
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.latencies_ms: list[float] = []

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the front is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HttpApiFront:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Requests are not echoed to stderr; the functions log them."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._reply(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                    return
                body = self.rfile.read(length) if length else b""
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    # API Gateway joins repeated headers with a comma; so does this front.
                    key = name.lower()
                    headers[key] = f"{headers[key]},{value}" if key in headers else value
                event = http_api_event(self.command, self.path, headers, body, self.client_address[0])
                started = time.perf_counter()
                try:
                    result = front._invoke(event)
                except Exception:
                    # What API Gateway answers when the function itself fails.
                    result = {"statusCode": 500, "body": '{"message":"Internal Server Error"}'}
                front.latencies_ms.append((time.perf_counter() - started) * 1000)
                payload = result.get("body") or ""
                raw = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode("utf-8")
                reply_headers = {str(name): str(value) for name, value in (result.get("headers") or {}).items()}
                self._reply(int(result.get("statusCode", 200)), reply_headers, raw)

            def _reply(self, status: int, headers: dict[str, str], raw: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-api-front", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
