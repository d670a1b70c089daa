"""A test harness: a config pointing at the local put.io, temp folders, and a CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from putio_mirror.cli.main import main
from putio_mirror.fakeputio import FakePutio
from putio_mirror.local.marks import MARK_NAME


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Mirror:
    """One mirror set-up: config file, blackhole, downloads, journal — against one fake put.io."""

    root: Path
    fake: FakePutio
    capsys: pytest.CaptureFixture[str]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def blackhole(self) -> Path:
        return self.root / "blackhole"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def journal(self) -> Path:
        return self.root / "state" / "journal.sqlite3"

    @property
    def config(self) -> Path:
        return self.root / "mirror.yaml"

    def write_config(self, **sections: Any) -> None:
        document: dict[str, Any] = {
            "putio": {
                "token_file": str(self.root / "token"),
                "api_url": self.fake.api_url,
                "upload_url": self.fake.upload_url,
                "timeout_seconds": 5,
            },
            "paths": {
                "blackhole": str(self.blackhole),
                "downloads": str(self.downloads),
                "journal": f"sqlite:///{self.journal}",
            },
            "download": {"read_timeout_seconds": 2, "max_outage_seconds": 20},
        }
        for name, values in sections.items():
            if isinstance(values, dict):
                document.setdefault(name, {}).update(values)
            else:  # a list section (arr:)
                document[name] = values
        (self.root / "token").write_text(self.fake.token + "\n")
        (self.root / "token").chmod(0o600)
        self.config.write_text(yaml.safe_dump(document))
        self.config.chmod(0o600)

    def run(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *argv])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        """Start the CLI in a separate process (for kill -9 and concurrency tests)."""
        # PYTHONUNBUFFERED (set on some machines) would hide output lost at exit.
        drop = {"PUTIO_TOKEN", "PYTHONUNBUFFERED"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        return subprocess.Popen(
            [sys.executable, "-m", "putio_mirror", "--config", str(self.config), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    @contextmanager
    def spawned(self, *argv: str) -> Iterator[subprocess.Popen[bytes]]:
        """The CLI in a process of its own, killed if the test ends with it still running."""
        process = self.spawn(*argv)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=15)
            for stream in (process.stdout, process.stderr):
                if stream is not None and not stream.closed:
                    stream.close()

    def kill_mid_file(self, file_id: int, at_least: int) -> Path:
        """Given a file of put.io's (made to stall past ``at_least`` bytes), run ``files
        download`` in its own process, kill -9 it once the file's part holds that many
        bytes, and return the part's path."""
        process = self.spawn("files", "download")
        part = self.downloads / ".putio-mirror-staging" / f"{file_id}.part"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < at_least):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
        return part

    def drop(self, name: str, data: bytes) -> Path:
        """Put a file into the blackhole, aged so it counts as completely written."""
        self.blackhole.mkdir(parents=True, exist_ok=True)
        path = self.blackhole / name
        path.write_bytes(data)
        stat = path.stat()
        os.utime(path, (stat.st_atime - 60, stat.st_mtime - 60))
        return path

    def local_files(self) -> dict[str, bytes]:
        """The files placed in the download folder (not staging, nor the folder's mark,
        which a run on a PostgreSQL journal leaves there: ``local/marks``)."""
        return {
            str(path.relative_to(self.downloads)): path.read_bytes()
            for path in sorted(self.downloads.rglob("*"))
            if path.is_file()
            and ".putio-mirror-staging" not in path.parts
            and path.name != MARK_NAME
        }


@contextmanager
def mirror_for(
    root: Path, fake: FakePutio, capsys: pytest.CaptureFixture[str], **sections: dict[str, Any]
) -> Iterator[Mirror]:
    """A mirror set-up whose config carries extra sections (the plain one is the fixture)."""
    mirror = Mirror(root, fake, capsys)
    mirror.write_config(**sections)
    mirror.blackhole.mkdir(parents=True, exist_ok=True)
    yield mirror


def assert_whole(mirror: Mirror, name: str, file_id: int) -> None:
    """The file ``name`` is in the download folder with put.io's CRC32 for ``file_id``."""
    data = (mirror.downloads / name).read_bytes()
    assert f"{zlib.crc32(data):08x}" == mirror.fake.file_crc32(file_id)
