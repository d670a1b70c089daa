"""The sessions shared by the put.io client and the fetch engine: proxies from the
environment still apply (read once per origin), and siblings share one connection pool."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from putio_mirror.net.sessions import Session, direct_get


class Recorder(ThreadingHTTPServer):
    """Answers every request with its own name; counts requests and TCP connections."""

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.request_lines: list[str] = []
        self.header_sets: list[dict[str, str]] = []
        self.connections = 0
        self.open_connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.server.open_connections += 1

    def finish(self) -> None:
        super().finish()
        self.server.open_connections -= 1  # the client closed it (or the server is stopping)

    def do_GET(self) -> None:
        self.server.request_lines.append(self.path)
        self.server.header_sets.append(dict(self.headers.items()))
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    pair = (Recorder("proxy"), Recorder("origin"))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in pair]
    for thread in threads:
        thread.start()
    yield pair
    for server in pair:
        server.shutdown()
        server.server_close()


def test_a_proxy_from_the_environment_is_used(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, _ = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Session() as session:
        assert session.get("http://api.put.io.example/v2/account/info", timeout=5).text == "proxy"
    assert proxy.request_lines == ["http://api.put.io.example/v2/account/info"]


def test_no_proxy_is_honoured(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, origin = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Session() as session:
        assert session.get(f"{origin.url}/file", timeout=5).text == "origin"
    assert proxy.request_lines == []


def test_the_environment_is_read_once_per_origin(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, origin = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Session() as session:
        session.get(f"{origin.url}/one", timeout=5)
        monkeypatch.delenv("HTTP_PROXY")
        # the run's first answer for this origin stands: no second look at os.environ
        assert session.get(f"{origin.url}/two", timeout=5).text == "proxy"
    with Session() as fresh:
        assert fresh.get(f"{origin.url}/three", timeout=5).text == "origin"


def test_siblings_share_one_connection_pool(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, origin = servers
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    with Session() as session:
        session.get(f"{origin.url}/a", timeout=5).close()
        sibling = session.sibling()
        sibling.get(f"{origin.url}/b", timeout=5).close()
        sibling.close()  # a sibling's close leaves the shared pool open
        session.get(f"{origin.url}/c", timeout=5).close()
    assert origin.request_lines == ["/a", "/b", "/c"]
    assert origin.connections == 1


def test_a_get_by_hand_sends_the_sessions_headers_as_they_are_now(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, origin = servers
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    asked = {"Authorization": "token t"}
    with Session() as session:
        for step in range(4):
            if step == 1:
                session.headers["X-Run"] = "one"
            elif step == 2:
                session.headers.update({"X-Run": b"two"})  # bytes are sent as Latin-1
            elif step == 3:
                del session.headers["X-Run"]
            answer = direct_get(session, f"{origin.url}/{step}", None, asked, (5.0, 5.0))
            assert answer is not None and answer.status_code == 200
    runs = [sent.get("X-Run") for sent in origin.header_sets]
    assert runs == [None, "one", "two", None]  # each change reached the next GET
    assert all(sent["Authorization"] == "token t" for sent in origin.header_sets)


def test_closing_a_session_closes_every_connection_its_family_opened(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib3 2 closes a pool only once it is garbage, not when its manager is cleared:
    a ``serve`` running for weeks kept each run's connections to put.io open until the
    cyclic garbage collector came by (one more socket for every torrent Sonarr added)."""
    proxy, origin = servers
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    gc.disable()  # as in a long-running process between two collections
    try:
        session = Session()
        sibling = session.sibling()
        asked = {"Authorization": "token t"}
        assert direct_get(sibling, f"{origin.url}/by-hand", None, asked, (5.0, 5.0)) is not None
        session.get(f"{proxy.url}/through-requests", timeout=5).close()
        assert (origin.open_connections, proxy.open_connections) == (1, 1)
        session.close()
        deadline = time.monotonic() + 5
        while origin.open_connections + proxy.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (origin.open_connections, proxy.open_connections) == (0, 0)
        del session, sibling
    finally:
        gc.enable()
