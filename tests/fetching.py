"""What the fetch engine's tests share: a remote file to fetch, and the node's requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path

from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.fetch.values import FileToFetch


def remote_file(fake: FakePutio, tmp_path: Path, size: int) -> tuple[FileToFetch, bytes]:
    """Given a fake and a size, add a file of that size; return what to fetch, and its bytes."""
    file_id = fake.add_file("Movie.mkv", size=size)
    item = FileToFetch(file_id, size, fake.file_crc32(file_id), tmp_path / "staging" / "x.part")
    return item, fake.file_content(file_id)


def node_requests(fake: FakePutio) -> list[LoggedRequest]:
    return [logged for logged in fake.requests if logged.host == "node"]


@contextmanager
def serving(server: HTTPServer) -> Iterator[int]:
    """Given a server bound to 127.0.0.1, serve on a thread; yield its port; stop it after."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
