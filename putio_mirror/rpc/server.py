"""The HTTP side of the Transmission RPC: session-id dance, basic auth, limits, JSON.

As Transmission 3 does: any request to ``{base}/rpc`` (with or without a trailing slash,
GET or POST) without the current ``X-Transmission-Session-Id`` gets 409 carrying it; wrong
or missing credentials get 401 with a ``Basic`` challenge (curl-based clients such as
``transmission-remote`` send them only then). Credentials are compared in constant time.
With no credentials set, a Host header naming neither an IP address, localhost nor one of
``rpc.allowed_hosts`` gets 421, Transmission's answer to DNS rebinding (CVE-2018-5702).
A body over ``MAX_BODY_BYTES``, a client that stalls longer than ``READ_TIMEOUT`` and a
body that is not JSON each get an HTTP error; a method's failure is a JSON ``result``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from putio_mirror.config.rpc import RpcSettings
from putio_mirror.rpc.methods import Door, answer
from putio_mirror.rpc.wire import encode_reply

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Transmission-Session-Id"
#: the largest .torrent the blackhole takes (10 MiB) in base64, and some room
MAX_BODY_BYTES = 16 * 1024 * 1024
#: seconds a client may take between two reads of its request
READ_TIMEOUT = 15.0


class RpcServer(ThreadingHTTPServer):
    """One thread per connection; a deep listen backlog (socketserver's 5 drops clients)."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, door: Door, settings: RpcSettings, read_timeout: float = READ_TIMEOUT
    ) -> None:
        self.door = door
        self.settings = settings
        self.read_timeout = read_timeout
        self.session_id = secrets.token_urlsafe(36)
        self._credentials = _credentials(settings)
        self._names_refused: set[str] = set()  # each warned of once
        super().__init__((settings.host, settings.port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def answers_to(self, host_header: str | None) -> bool:
        """Given the Host header, say whether a request naming it may be answered: any with
        a password; without one, an IP address, localhost or one of ``allowed_hosts``. A
        web page under its own name made to point here (DNS rebinding) is the browser's
        same origin and could read the session id; with a name it does not own, it cannot."""
        if self._credentials is not None:
            return True
        name = host_name(host_header)
        if name is None:
            return False
        if name in ("localhost", "localhost.") or _is_ip_address(name):
            return True
        allowed = any(fnmatch.fnmatchcase(name, pattern) for pattern in self.settings.allowed_hosts)
        if not allowed and name not in self._names_refused:
            self._names_refused.add(name)
            log.warning("rpc: %s", _unknown_host(host_header))
        return allowed

    def is_authorised(self, header: str | None) -> bool:
        """Given the Authorization header, say whether it carries the configured user."""
        if self._credentials is None:
            return True
        offered = _basic_credentials(header)
        # Compare both whatever the first says: the time taken tells nothing.
        user_ok = hmac.compare_digest(offered[0], self._credentials[0])
        password_ok = hmac.compare_digest(offered[1], self._credentials[1])
        return user_ok and password_ok

    def start(self) -> threading.Thread:
        """Serve on a thread of its own; return it (``shutdown`` ends it)."""
        thread = threading.Thread(target=self.serve_forever, name="rpc-server", daemon=True)
        thread.start()
        log.info(
            "Transmission RPC on http://%s:%d%s/rpc",
            *self.server_address[:2],
            self.settings.url_base,
        )
        return thread


def host_name(header: str | None) -> str | None:
    """Given a Host header, return its name or address in lower case, without port or
    brackets; None if there is none or it is malformed."""
    if not header:
        return None
    try:
        return urllib.parse.urlsplit(f"//{header.strip()}").hostname
    except ValueError:
        return None


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _unknown_host(header: str | None) -> str:
    return (
        f"refused a request for the host name {header!r}: without rpc.username and "
        "rpc.password, only requests to an IP address, localhost or a name in "
        "rpc.allowed_hosts are answered (a web page could otherwise reach this endpoint "
        "under a name of its own); add the name clients use to rpc.allowed_hosts, or set a "
        "username and password"
    )


def _credentials(settings: RpcSettings) -> tuple[bytes, bytes] | None:
    if settings.username is None or settings.password is None:
        return None
    return settings.username.encode("utf-8"), settings.password.reveal().encode("utf-8")


def _basic_credentials(header: str | None) -> tuple[bytes, bytes]:
    """Given an Authorization header, return (user, password) as UTF-8 bytes; (b"", b"")
    if none. Sonarr encodes them as ISO-8859-1: such bytes are read as that, re-encoded."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return b"", b""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, _, password = text.partition(":")  # a password may hold ':' itself
    return user.encode("utf-8"), password.encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: RpcServer
    protocol_version = "HTTP/1.1"
    server_version = "putio-mirror"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # a stalled client is dropped

    def do_GET(self) -> None:
        self._handle(has_body=False)

    def do_POST(self) -> None:
        self._handle(has_body=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rpc %s: " + format, self.address_string(), *args)

    def _handle(self, *, has_body: bool) -> None:
        base = self.server.settings.url_base
        path = self.path.split("?", 1)[0]
        if path not in (f"{base}/rpc", f"{base}/rpc/"):
            self._refuse(HTTPStatus.NOT_FOUND, f"the RPC endpoint is {base}/rpc")
            return
        if not self.server.answers_to(self.headers.get("Host")):
            self._refuse(HTTPStatus.MISDIRECTED_REQUEST, _unknown_host(self.headers.get("Host")))
            return
        if not self.server.is_authorised(self.headers.get("Authorization")):
            self._refuse(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized user",
                {"WWW-Authenticate": 'Basic realm="Transmission"'},
            )
            return
        offered = self.headers.get(SESSION_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.server.session_id.encode()):
            self._refuse(
                HTTPStatus.CONFLICT,
                f"{SESSION_HEADER}: {self.server.session_id}",
                {SESSION_HEADER: self.server.session_id},
            )
            return
        if not has_body:
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "POST a JSON request", {"Allow": "POST"})
            return
        body = self._body()
        if body is None:
            return
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            self._refuse(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return
        self._reply(self._answer(request))

    def _answer(self, request: object) -> dict[str, Any]:
        try:
            return answer(self.server.door, request)
        except Exception:  # a bug in one method must not take the endpoint down
            log.exception("rpc: a request failed")
            return {"result": "internal error in putio-mirror (see its log)", "arguments": {}}

    def _body(self) -> bytes | None:
        """Return the request's body; None after answering with an HTTP error."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
            return None
        length_text = self.headers.get("Content-Length", "")
        if not length_text.isdigit():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"requests are limited to {MAX_BODY_BYTES} bytes",
            )
            return None
        data = self.rfile.read(length)  # the socket's timeout bounds a stalling client
        if len(data) < length:
            self.close_connection = True
            return None
        return data

    def _discard_body(self) -> bool:
        """Read and drop the request's body; say whether the connection can go on."""
        length_text = self.headers.get("Content-Length", "0")
        if self.headers.get("Transfer-Encoding") or not length_text.isdigit():
            return False
        length = int(length_text)
        return length <= MAX_BODY_BYTES and len(self.rfile.read(length)) == length

    def _reply(self, reply: dict[str, Any]) -> None:
        data = encode_reply(reply)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(
        self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None
    ) -> None:
        data = f"<h1>{status.value}: {status.phrase}</h1><p>{message}</p>".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        # A body left unread would be taken for the next request: an authenticated client's
        # is read and dropped (it retries at once with the session id), others' never are.
        if status != HTTPStatus.CONFLICT or not self._discard_body():
            # said, not only done: a client that reuses the connection for its next request
            # before our close reaches it (a busy host) meets a reset, not an answer
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
