"""A test harness for the RPC door: ``serve`` on a thread against the fake put.io, and a
small Transmission client that does the session dance the way Sonarr does."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests

from putio_mirror.cli.serve import serve
from putio_mirror.cli.signals import StopFlag
from putio_mirror.config.settings import load_settings
from putio_mirror.rpc.server import SESSION_HEADER, RpcServer
from tests.mirror_env import Mirror

USER, PASSWORD = "sonarr", "pass: with spaces"
READ_TIMEOUT = 0.5


class Client:
    """Transmission's RPC as Sonarr speaks it: POST JSON, redo once after a 409."""

    def __init__(self, url: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = auth
        self.session_id = ""

    def post(self, body: object) -> requests.Response:
        response = self._post(body)
        if response.status_code == 409:
            self.session_id = response.headers[SESSION_HEADER]
            response = self._post(body)
        return response

    def _post(self, body: object) -> requests.Response:
        headers = {SESSION_HEADER: self.session_id}
        return self.session.post(self.url, json=body, headers=headers, timeout=10)

    def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        response = self.post({"method": method, "arguments": arguments, "tag": 7})
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        assert reply.get("tag") == 7
        return reply

    def ok(self, method: str, **arguments: Any) -> dict[str, Any]:
        reply = self.call(method, **arguments)
        assert reply["result"] == "success", reply
        result: dict[str, Any] = reply["arguments"]
        return result

    def add_torrent(self, data: bytes, **arguments: Any) -> dict[str, Any]:
        metainfo = base64.b64encode(data).decode()
        return self.ok("torrent-add", metainfo=metainfo, **arguments)


@contextmanager
def serving(
    mirror: Mirror, sections: dict[str, Any] | None = None, **rpc: Any
) -> Iterator[RpcServer]:
    """Run ``putio-mirror serve`` for the mirror's config (with ``rpc`` in its ``rpc:``
    section, and any other ``sections``) on a thread; stop it afterwards."""
    section = {
        "listen": "127.0.0.1:0",
        "username": USER,
        "password": PASSWORD,
        "poll_seconds": 0.2,
    } | rpc
    mirror.write_config(**(sections or {}), rpc=section)
    settings = load_settings(mirror.config, {})
    ready: list[RpcServer] = []
    started = threading.Event()
    flag = StopFlag()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve(
                settings, stop=flag, on_ready=lambda server: (ready.append(server), started.set())
            )
        except BaseException as error:  # shown by the test
            failure.append(error)
            started.set()

    thread = threading.Thread(target=run, name="serve", daemon=True)
    thread.start()
    assert started.wait(10), "serve did not start"
    if failure:
        raise failure[0]
    try:
        yield ready[0]
    finally:
        flag.set()
        thread.join(30)
        assert not thread.is_alive(), "serve did not stop"
        assert not failure, failure


def url_of(server: RpcServer, suffix: str = "/rpc") -> str:
    return f"http://127.0.0.1:{server.port}{server.settings.url_base}{suffix}"


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {condition}")
        time.sleep(0.05)


def watch_sync_over() -> bool:
    """Whether no sync of ``serve``'s watcher runs (each runs on a thread of its own, in
    this process: ``cli/watch._Syncs``); put.io's files are listed by a sync alone, so a
    count of the listings taken after it is not raised by one that was under way."""
    return not any(thread.name == "watch-sync" for thread in threading.enumerate())


def answers(client: Client) -> bool:
    """Whether a ``serve`` process answers its RPC clients yet."""
    try:
        client.ok("session-get")
    except requests.ConnectionError:
        return False
    return True
