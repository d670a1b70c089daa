"""Two hosts, one PostgreSQL journal: the work is shared and no file is fetched twice."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from putio_mirror.fakeputio import FakePutio


@pytest.fixture
def shared_journal(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    import psycopg

    name = f"hosts_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def host_config(root: Path, host: str, fake: FakePutio, journal_url: str) -> Path:
    folder = root / host
    folder.mkdir()
    (folder / "token").write_text(fake.token)
    (folder / "token").chmod(0o600)
    config = {
        "putio": {
            "token_file": str(folder / "token"),
            "api_url": fake.api_url,
            "upload_url": fake.upload_url,
            "timeout_seconds": 5,
        },
        "paths": {
            "blackhole": str(folder / "blackhole"),
            "downloads": str(folder / "downloads"),
            "journal": journal_url,
        },
        "download": {"parallel_files": 2, "placement": "file"},
    }
    path = folder / "mirror.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def start(config: Path, host: str) -> subprocess.Popen[bytes]:
    # Each "host" has its own state folder, so its own run lock, as two machines would.
    env = dict(os.environ, XDG_STATE_HOME=str(config.parent / "state"), XDG_RUNTIME_DIR="")
    return subprocess.Popen(
        [sys.executable, "-m", "putio_mirror", "--config", str(config), "files", "download"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_hosts_sharing_one_postgresql_journal_fetch_each_file_once(
    tmp_path: Path, fake_putio: FakePutio, shared_journal: str
) -> None:
    ids = [fake_putio.add_file(f"f{n:03}.bin", size=20_000 + n) for n in range(200)]
    configs = [host_config(tmp_path, host, fake_putio, shared_journal) for host in ("a", "b")]
    processes = [start(config, host) for config, host in zip(configs, "ab", strict=True)]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    fetched = Counter(r.path for r in fake_putio.requests if r.host == "node" and r.method == "GET")
    assert len(fetched) == 200 and max(fetched.values()) == 1, "no file fetched twice"
    by_host = [{p.name for p in (config.parent / "downloads").glob("*.bin")} for config in configs]
    assert by_host[0].isdisjoint(by_host[1])
    assert by_host[0] | by_host[1] == {f"f{n:03}.bin" for n in range(200)}
    assert all(by_host), "both hosts did part of the work"
    contents = {
        p.name: p.read_bytes()
        for config in configs
        for p in (config.parent / "downloads").glob("*.bin")
    }
    assert all(contents[f"f{n:03}.bin"] == fake_putio.file_content(i) for n, i in enumerate(ids))
