"""Shared fixtures: a running fake put.io, a factory of small valid torrents, a PostgreSQL URL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
from fastbencode import bencode  # type: ignore[attr-defined]
from hypothesis import HealthCheck, settings

from putio_mirror.config.rpc import RpcSettings
from putio_mirror.core.state import Policy
from putio_mirror.fakeputio import FakePutio
from putio_mirror.journal.store import Journal
from putio_mirror.putio.client import PutioClient
from putio_mirror.rpc.board import Board
from putio_mirror.rpc.methods import Door
from putio_mirror.rpc.server import RpcServer
from tests.mirror_env import Mirror
from tests.postgres_server import DEBIAN_BINDIRS, PostgresServer, find_binaries
from tests.rpc_env import READ_TIMEOUT

PIECE_LENGTH = 16384
TorrentFactory = Callable[..., bytes]
POSTGRES_URL_ENV = "PUTIO_MIRROR_TEST_POSTGRES_URL"

# Hypothesis's checks of time (an example's 200 ms deadline, "input generation is slow")
# judge the machine, not the property: in the whole suite on a loaded 2-core machine,
# generating six trees for tests/test_naming took over a second and failed the run. The
# properties are checked as before, on as many examples.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


@pytest.fixture
def fake_putio() -> Iterator[FakePutio]:
    """A started fake put.io, stopped after the test."""
    with FakePutio(token="test-token") as fake:
        yield fake


@pytest.fixture
def client(fake_putio: FakePutio) -> Iterator[PutioClient]:
    """A put.io client of the fake put.io (the fetch engine's tests ask it for links)."""
    with PutioClient(fake_putio.token, fake_putio.api_url, timeout=5.0) as made:
        yield made


@pytest.fixture
def torrent_bytes() -> TorrentFactory:
    """A factory ``make(name, files=None, length=1234) -> bytes`` of valid bencoded torrents."""

    def make(name: str, files: list[tuple[str, int]] | None = None, length: int = 1234) -> bytes:
        info: dict[bytes, object] = {b"name": name.encode(), b"piece length": PIECE_LENGTH}
        if files:
            info[b"files"] = [
                {b"length": size, b"path": [part.encode() for part in path.split("/")]}
                for path, size in files
            ]
            total = sum(size for _, size in files)
        else:
            info[b"length"] = length
            total = length
        pieces = max(1, -(-total // PIECE_LENGTH))
        seed = name.encode()
        info[b"pieces"] = b"".join(
            hashlib.sha1(seed + bytes([n % 256]), usedforsecurity=False).digest()
            for n in range(pieces)
        )
        return bytes(bencode({b"announce": b"http://tracker.invalid/announce", b"info": info}))

    return make


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL of a role that may create databases, for the whole session.

    $PUTIO_MIRROR_TEST_POSTGRES_URL if set, else a throwaway server started here (about a
    second) and stopped at the end. Without either the test is skipped, except under CI
    (``$CI`` set), where that is a failure: CI must not pass by testing less.
    """
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        yield configured
        return
    bindir = find_binaries()
    if bindir is None:
        _postgres_missing(
            f"no PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH or in "
            f"{DEBIAN_BINDIRS}: install Debian's postgresql (scripts/ensure-postgres.sh, as "
            f"root) or set {POSTGRES_URL_ENV}"
        )
    with PostgresServer(bindir) as server:
        yield server.url


def _postgres_missing(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI must test PostgreSQL, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def mirror(tmp_path: Path, fake_putio: FakePutio, capsys: pytest.CaptureFixture[str]) -> Mirror:
    """A mirror set-up (config, folders, CLI runner) against the running fake put.io."""
    harness = Mirror(tmp_path, fake_putio, capsys)
    harness.write_config()
    # as a real set-up has it: a missing blackhole needs a person (exit 11), see test_attention
    harness.blackhole.mkdir()
    return harness


@pytest.fixture
def rpc_endpoint(tmp_path: Path) -> Iterator[RpcServer]:
    """The endpoint alone (no watcher) on a journal of its own, stopped afterwards."""
    journal = Journal.open(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    door = Door(
        journal,
        Board(journal, Policy()),
        tmp_path / "downloads",
        RpcSettings(port=0),
        Policy(),
        wake=lambda: None,
        clock=lambda: datetime.now(UTC),
    )
    endpoint = RpcServer(door, RpcSettings(port=0), read_timeout=READ_TIMEOUT)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.shutdown()
        endpoint.server_close()
        journal.close()
