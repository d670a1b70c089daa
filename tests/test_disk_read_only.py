"""The download folder's disk turns read-only in the middle of a run, as ext4 remounts
itself after an error (``errors=remount-ro``) or a NAS share that loses its disk does.
The download folder is a real FUSE filesystem told to refuse every change (EROFS); real
runs against the local put.io, a real SQLite journal on another disk."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

from putio_mirror.core.errors import ExitCode
from tests.faulty_fs import READ_ONLY, faulty_mount
from tests.mirror_env import Mirror

FILES = 30


def _failures(mirror: Mirror) -> dict[int, int]:
    with closing(sqlite3.connect(f"file:{mirror.journal}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT file_id, failures FROM downloads WHERE failures > 0"))


def test_a_disk_turned_read_only_stops_the_run_says_so_and_counts_no_file_as_failing(
    mirror: Mirror,
) -> None:
    pack = mirror.fake.add_folder("Pack")
    for n in range(FILES):
        mirror.fake.add_file(f"f{n:02}.bin", pack, size=100_000)
    mirror.fake.node_bytes_per_second = 1_000_000  # a tenth of a second a file
    mirror.write_config(download={"parallel_files": 2, "placement": "file"})
    control = mirror.root / "control"
    with faulty_mount(mirror.root / "backing", mirror.downloads, control):
        with mirror.spawned("files", "download") as process:
            deadline = time.monotonic() + 60
            while len(list((mirror.downloads / "Pack").glob("*.bin"))) < 5:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            control.write_text(f"{READ_ONLY}\n")
            out, err = process.communicate(timeout=60)
        text = (out + err).decode()
        assert process.returncode == ExitCode.ITEMS_FAILED, text
        assert "read-only" in text and "dmesg" in text, text
        # one word for the disk, not one for each file it refused
        assert text.count("read-only") <= 3, text
        assert _failures(mirror) == {}, "a file was counted as failing for the disk's trouble"
        control.write_text("")
        again = mirror.run("files", "download")
        assert again.code == 0, again.err
        assert len(list((mirror.downloads / "Pack").glob("*.bin"))) == FILES
