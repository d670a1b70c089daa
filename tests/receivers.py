"""Local HTTP receivers for the notify tests: one that records every POST (Apprise's
``json://`` target), and an imitation of the Sonarr/Radarr command API. 127.0.0.1 only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """What a local server was sent, and the address to send it to."""

    port: int
    #: the API key an *arr imitation accepts (None: any request is accepted)
    api_key: str | None = None
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {key.lower(): value for key, value in self.headers.items()}
            receiver.requests.append(Received(self.path, headers, body))
            self._answer(headers, body)

        def _answer(self, headers: dict[str, str], body: Any) -> None:
            if receiver.api_key is None:
                self._reply(200, {"ok": True})
            elif headers.get("x-api-key") != receiver.api_key:
                self._reply(401, {"error": "Unauthorized"})
            elif self.path != "/api/v3/command" or not isinstance(body, dict):
                self._reply(404, {"message": "NotFound"})
            else:  # as Sonarr and Radarr do: the queued command, 201
                self._reply(201, {"id": len(receiver.requests), **body, "status": "queued"})

        def _reply(self, status: int, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(api_key: str | None = None) -> Iterator[Receiver]:
    """Run a local receiver (an *arr imitation if ``api_key`` is given) until the block ends."""
    receiver = Receiver(0, api_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
