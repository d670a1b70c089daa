"""What the fetch engine's tests share: a remote file to fetch, and the node's requests."""

from __future__ import annotations

import sys
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
    """Given a server bound to 127.0.0.1, serve on a thread; yield its port; stop it after.

    A client that went away (the tests cut connections on purpose) is no error to print:
    the handler threads outlive the test, and socketserver's print landed between two
    tests' captures, as a stray line of dashes in the suite's output."""
    loud = server.handle_error

    def handle_error(request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            loud(request, client_address)  # type: ignore[arg-type]

    server.handle_error = handle_error  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
