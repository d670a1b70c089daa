"""Real Transmission clients against ``serve``: Debian's ``transmission-remote``.

Skipped where the program is missing, except under CI (``$CI`` set), where that is a
failure: ``.ci/run`` installs it with ``scripts/ensure-transmission.sh``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from putio_mirror.fakeputio import FakePutio
from putio_mirror.rpc.server import RpcServer
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import PASSWORD, USER, serving, url_of, wait_for

MAGNET_HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
# The same info-hash in base32, as indexers often write it: clients must see it as hex.
MAGNET = "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=Some.Magnet.Item"


@pytest.fixture
def transmission_remote() -> str:
    program = shutil.which("transmission-remote")
    if program is None:
        reason = "transmission-remote is missing (scripts/ensure-transmission.sh installs it)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must test with a real client, but {reason}", pytrace=False)
        pytest.skip(reason)
    return program


def remote(program: str, server: RpcServer, *arguments: str) -> str:
    completed = subprocess.run(
        [program, url_of(server, ""), "--auth", f"{USER}:{PASSWORD}", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return completed.stdout


def test_transmission_remote_adds_a_torrent_and_a_magnet_lists_and_removes_them(
    mirror: Mirror,
    fake_putio: FakePutio,
    torrent_bytes: TorrentFactory,
    transmission_remote: str,
) -> None:
    torrent = mirror.root / "Some.Torrent.Item.torrent"
    torrent.write_bytes(torrent_bytes("Some.Torrent.Item", length=4000))
    with serving(mirror) as server:
        added = remote(transmission_remote, server, "-a", str(torrent))
        assert "success" in added
        assert "success" in remote(transmission_remote, server, "-a", MAGNET)
        assert "success" in remote(transmission_remote, server, "-a", str(torrent))  # duplicate
        listing = remote(transmission_remote, server, "-l")
        rows = [line for line in listing.splitlines() if "Some." in line]
        assert len(rows) == 2, listing
        assert any("Some.Torrent.Item" in row for row in rows)
        assert any("Some.Magnet.Item" in row for row in rows)
        info = remote(transmission_remote, server, "-t", MAGNET_HASH, "-i")
        assert f"Hash: {MAGNET_HASH}" in info
        assert f"Location: {mirror.downloads}" in info
        # the pass submits each once, by info-hash
        wait_for(lambda: len(fake_putio.transfers()) == 2)
        assert "success" in remote(transmission_remote, server, "-t", MAGNET_HASH, "-r")
        # its unfinished transfer is cancelled by the sync the removal started
        wait_for(lambda: MAGNET_HASH not in [t["hash"] for t in fake_putio.transfers()])
        after = remote(transmission_remote, server, "-l")
        assert "Some.Magnet.Item" not in after and "Some.Torrent.Item" in after
        session = remote(transmission_remote, server, "-si")
        assert "3.00 (putio-mirror" in session
    submissions = [
        entry.path
        for entry in fake_putio.requests
        if entry.method == "POST" and entry.path in ("/v2/transfers/add", "/v2/files/upload")
    ]
    assert sorted(submissions) == ["/v2/files/upload", "/v2/transfers/add"]  # once each


def test_transmission_remote_reaches_a_password_less_serve_by_localhost_and_its_ip(
    mirror: Mirror, transmission_remote: str
) -> None:
    # The default set-up: serve on loopback without a password, the client told
    # "localhost:<port>" (Transmission's own default) or the address.
    with serving(mirror, username=None, password=None) as server:
        base = f"{server.port}{server.settings.url_base}/"
        for where in (f"localhost:{base}", f"127.0.0.1:{base}"):
            completed = subprocess.run(
                [transmission_remote, where, "-si"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert completed.returncode == 0, completed.stderr + completed.stdout
            assert "3.00 (putio-mirror" in completed.stdout
