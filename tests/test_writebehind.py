"""Downloaded bytes are put on disk early and do not stay in the page cache.

Page residency is read with util-linux's ``fincore``, as an operator would check it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.partfile import WriteBehind
from putio_mirror.fetch.values import Fetched, FileToFetch
from putio_mirror.putio.client import PutioClient

MIB = 1024 * 1024


def _resident_bytes(path: Path) -> int:
    fincore = shutil.which("fincore")
    if fincore is None:
        pytest.skip("util-linux's fincore is not installed")
    command = [fincore, "--bytes", "--noheadings", "--output", "RES", str(path)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


@pytest.mark.parametrize("connections", [4, 1], ids=["segmented", "one-segment"])
def test_a_fetched_file_is_verified_and_left_out_of_the_page_cache(
    fake_putio: FakePutio, client: PutioClient, tmp_path: Path, connections: int
) -> None:
    file_id = fake_putio.add_file("Movie.mkv", size=6 * MIB)
    part = tmp_path / "Movie.mkv.part"
    item = FileToFetch(file_id, 6 * MIB, fake_putio.file_crc32(file_id), part)
    downloader = Fetcher(client.download_url, connections=connections, min_segment_size=MIB)
    try:
        assert downloader.fetch(item) == Fetched(True, 6 * MIB)
    finally:
        downloader.close()
    assert _resident_bytes(part) == 0
    assert part.read_bytes() == fake_putio.file_content(file_id)


def test_write_behind_flushes_and_drops_every_few_mebibytes_without_waiting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        behind = WriteBehind(fd, path, every=2 * MIB)
        os.write(fd, b"x" * MIB)
        behind.wrote(MIB)  # below the threshold: nothing happens yet
        behind.join()
        assert _resident_bytes(path) == MIB
        os.write(fd, b"y" * MIB)
        behind.wrote(MIB)  # the threshold: a background flush, then the pages go
        behind.join()
        assert _resident_bytes(path) == 0
        os.write(fd, b"z" * 4096)
        behind.finish()
        assert _resident_bytes(path) == 0
    finally:
        os.close(fd)
    assert path.stat().st_size == 2 * MIB + 4096
