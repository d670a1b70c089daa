"""Shared fixtures: a running fake put.io and a factory of small valid torrents."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from fastbencode import bencode  # type: ignore[attr-defined]

from putio_mirror.fakeputio import FakePutio

PIECE_LENGTH = 16384
TorrentFactory = Callable[..., bytes]


@pytest.fixture
def fake_putio() -> Iterator[FakePutio]:
    """A started fake put.io, stopped after the test."""
    with FakePutio(token="test-token") as fake:
        yield fake


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
