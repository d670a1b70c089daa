"""`putio-mirror doctor`: one line per check, a hint per problem, exit 0 or 2, read-only."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from putio_mirror.core.errors import ExitCode
from putio_mirror.core.health import describe_windows
from putio_mirror.core.window import parse_schedule
from putio_mirror.journal.store import SCHEMA_VERSION
from putio_mirror.local.lock import RunLock
from tests.mirror_env import Mirror


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


def test_a_good_setup_is_all_well_and_doctor_creates_nothing(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    result = mirror.run("doctor")
    assert result.code == 0, result.out
    assert problems(result.out) == [] and "All is well." in result.out
    assert f"config: {mirror.config}" in result.out
    assert "valid: put.io account fakeputio" in result.out and "free of" in result.out
    assert "download.remote_root: 0, the whole account" in result.out
    assert "not made yet" in result.out and "any time" in result.out
    assert not mirror.downloads.exists() and not mirror.journal.exists()
    assert not any(request.mutating for request in mirror.fake.requests)


def test_download_nodes_that_send_no_byte_are_a_problem_though_the_api_answers(
    mirror: Mirror,
) -> None:
    # "All is well" while every download stalls sent people looking everywhere but put.io.
    mirror.blackhole.mkdir(exist_ok=True)
    assert "download nodes: not checked: put.io holds no file" in mirror.run("doctor").out
    listed = mirror.fake.add_file("listed.mkv", size=1000)
    told = mirror.run("doctor").out
    assert f"ok      download nodes: the first byte of put.io file {listed} came in" in told
    assert mirror.run("sync").code == 0
    newer = mirror.fake.add_file("newer.mkv", size=1000)
    mirror.fake.outage(3_600, hosts=["node"])
    mirror.fake.clear_requests()
    result = mirror.run("doctor")
    assert result.code == 2
    assert problems(result.out) == [
        f"PROBLEM download nodes: no byte of put.io file {listed} came, though put.io's API answers"
    ], "the mirrored file is asked, not the first listed"
    assert "put.io's storage or the network to it is down" in result.out
    assert f"/v2/files/{newer}/url" not in {r.path for r in mirror.fake.requests}


def test_files_deleted_from_put_io_after_their_mirroring_are_not_asked_a_byte_of(
    mirror: Mirror,
) -> None:
    # With delete_remote_after, every mirrored file is gone from put.io: asking its link
    # found nothing, and doctor told of nodes down to everyone who lets put.io be emptied.
    mirror.write_config(download={"delete_remote_after": True})
    mirror.fake.add_file("mirrored.mkv", size=1000)
    assert mirror.run("sync").code == 0
    assert [f for f in mirror.fake.files() if f["file_type"] != "FOLDER"] == []
    assert "download nodes: not checked: put.io holds no file" in mirror.run("doctor").out
    waiting = mirror.fake.add_file("waiting.mkv", size=1000)
    result = mirror.run("doctor")
    assert result.code == 0, result.out
    assert f"ok      download nodes: the first byte of put.io file {waiting} came in" in result.out


def test_journal_schema_is_shown_and_a_newer_one_is_a_problem(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    assert mirror.run("sync").code == 0
    assert f"reachable, schema {SCHEMA_VERSION}" in mirror.run("doctor").out
    with sqlite3.connect(mirror.journal) as database:
        database.execute("UPDATE schema_info SET version = 99")
    result = mirror.run("doctor")
    assert result.code == 2
    (line,) = problems(result.out)
    assert "schema 99, newer" in line and "hint: upgrade putio-mirror" in result.out


def test_a_journal_at_a_revision_this_release_does_not_know_is_a_problem(mirror: Mirror) -> None:
    """sync refuses a journal a newer release upgraded (exit 7); doctor said all was well."""
    assert mirror.run("sync").code == 0
    with sqlite3.connect(mirror.journal) as database:
        database.execute("UPDATE alembic_version SET version_num = '0099'")
    assert mirror.run("sync").code == ExitCode.JOURNAL
    result = mirror.run("doctor")
    assert result.code == 2
    (line,) = problems(result.out)
    assert "schema 99, newer" in line and "hint: upgrade putio-mirror" in result.out


def test_missing_blackhole_and_remote_root_are_each_a_problem_with_a_hint(
    mirror: Mirror,
) -> None:
    mirror.blackhole.rmdir()
    folder = mirror.fake.add_folder("Movies")
    mirror.write_config(download={"remote_root": 999999}, transfers={"save_parent_id": folder})
    result = mirror.run("doctor")
    assert result.code == 2
    found = problems(result.out)
    assert len(found) == 2, result.out
    assert f"paths.blackhole: {mirror.blackhole} does not exist" in found[0]
    assert "download.remote_root: put.io has no folder 999999" in found[1]
    assert f"mkdir -p {mirror.blackhole}" in result.out
    assert f"transfers.save_parent_id: {folder}, the folder 'Movies'" in result.out
    assert "2 problems found." in result.out


def test_a_refused_or_missing_token_is_a_problem_that_points_at_login(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    mirror.fake.revoke_token()
    result = mirror.run("doctor")
    assert result.code == 2 and "PROBLEM token: put.io refused the token" in result.out
    assert "putio-mirror login" in result.out
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (mirror.root / "token").unlink()
    document = yaml.safe_load(mirror.config.read_text())
    del document["putio"]["token_file"]
    mirror.config.write_text(yaml.safe_dump(document))
    result = mirror.run("doctor")
    assert result.code == 2 and "PROBLEM token: no put.io token is set" in result.out


def test_too_little_free_space_is_a_problem(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    mirror.write_config(download={"free_space_margin_mb": 2**40})
    result = mirror.run("doctor")
    assert result.code == 2
    (line,) = problems(result.out)
    assert line.startswith("PROBLEM free space:") and "kept spare" in line


def test_staging_on_another_filesystem_is_a_problem(mirror: Mirror) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == mirror.root.stat().st_dev:
        pytest.skip("no second filesystem to put staging on")
    mirror.blackhole.mkdir(exist_ok=True)
    mirror.write_config(paths={"staging": str(other / f"staging-{mirror.root.name}")})
    result = mirror.run("doctor")
    (line,) = problems(result.out)
    assert "another filesystem" in line and "same disk" in result.out


def test_doctor_runs_while_a_sync_holds_the_run_lock(mirror: Mirror) -> None:
    mirror.blackhole.mkdir(exist_ok=True)
    assert mirror.run("sync").code == 0
    with RunLock(mirror.journal.with_name(mirror.journal.name + ".lock")):
        assert mirror.run("sync").code == 6  # the lock is real
        assert mirror.run("doctor").code == 0


def test_windows_are_told_in_local_time_with_the_next_opening() -> None:
    zone = timezone(timedelta(hours=1), "CET")
    friday_evening = datetime(2026, 11, 27, 19, 30, tzinfo=zone)
    schedule = parse_schedule(["01:00-06:00", "Sat 10:00-12:00"])
    text = describe_windows(schedule, friday_evening)
    assert text == "01:00-06:00, Sat 10:00-12:00 (CET); closed now, next opens Sat 01:00"
    assert describe_windows(schedule, friday_evening.replace(hour=2)).endswith("open now")


def test_a_token_file_that_cannot_be_used_is_named_with_why_not_called_missing(
    mirror: Mirror,
) -> None:
    # "no put.io token is set" sent people to `login` while their token file held a comment.
    mirror.blackhole.mkdir(exist_ok=True)
    token_file = mirror.root / "token"
    token_file.write_text(f"# put.io, made in May\n{mirror.fake.token}\n")
    result = mirror.run("doctor")
    assert result.code == 2
    (line,) = problems(result.out)
    assert f"PROBLEM token: mirror.yaml: putio.token_file: {token_file}: should hold only" in line
    assert "comments are not allowed there" in line and "no put.io token is set" not in line
    assert mirror.fake.token not in result.out + result.err


def test_a_config_problem_beside_the_token_is_not_called_all_well(mirror: Mirror) -> None:
    # every run refuses this file; doctor said "All is well." of it.
    mirror.blackhole.mkdir(exist_ok=True)
    mirror.write_config(rpc={"listen": "0.0.0.0:9091"})
    assert mirror.run("sync", "--dry-run").code == 2
    result = mirror.run("doctor")
    assert result.code == 2, result.out
    assert "All is well." not in result.out
    assert "rpc.listen '0.0.0.0:9091' is not loopback" in result.err


@pytest.mark.slow
def test_a_postgresql_journal_that_never_answers_is_a_problem_not_a_hang(mirror: Mirror) -> None:
    # A paused database VM, or a port where something else listens: the connection is
    # taken and no word comes. doctor (and every run) waited for ever.
    pytest.importorskip("psycopg")
    mirror.blackhole.mkdir(exist_ok=True)
    server = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):  # closed: the test is over
            while True:
                taken.append(server.accept()[0])

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    port = server.getsockname()[1]
    mirror.write_config(paths={"journal": f"postgresql+psycopg://mirror@127.0.0.1:{port}/m"})
    doctor = mirror.spawn("doctor")
    try:
        out, _ = doctor.communicate(timeout=60)
    finally:
        doctor.kill()
        doctor.communicate()
        # the listener first, then what it took: a connection it took after the others
        # were closed was left to the garbage collector (a ResourceWarning in a later test)
        server.close()
        taker.join(timeout=10)
        for connection in taken:
            connection.close()
    assert doctor.returncode == 2
    (line,) = problems(out.decode())
    assert line.startswith("PROBLEM journal:") and "timeout" in line
