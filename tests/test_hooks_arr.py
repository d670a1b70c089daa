"""After an item is placed: ``hooks.on_item_placed`` runs a real command with the item in
its environment (never through a shell), and Sonarr/Radarr (a local imitation of their
command API) are asked to import it. Their failures are warnings, never a failed run."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror
from tests.receivers import receiving

RECORDER = """\
import json, os, sys
wanted = ("PUTIO_MIRROR_ITEM_PATH", "PUTIO_MIRROR_ITEM_NAME", "PUTIO_MIRROR_ITEM_ID",
          "PUTIO_MIRROR_EVENT")
seen = {name: os.environ.get(name) for name in wanted}
seen["argv"] = sys.argv[1:]
seen["exists"] = os.path.exists(seen["PUTIO_MIRROR_ITEM_PATH"] or "")
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(seen) + "\\n")
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "record_env.py"
    script.write_text(RECORDER)
    return script, tmp_path / "seen.jsonl"


def seen(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def with_hook(mirror: Mirror, argv: list[str], **hooks: Any) -> None:
    mirror.write_config(hooks={"on_item_placed": argv, **hooks})


def test_the_hook_runs_once_per_placed_item_with_it_in_the_environment(
    mirror: Mirror, tmp_path: Path
) -> None:
    script, record = recorder(tmp_path)
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e01.mkv", show, size=1000)
    mirror.fake.add_file("e02.mkv", show, size=1000)
    film = mirror.fake.add_file("film.mkv", size=500)
    with_hook(mirror, [sys.executable, str(script), str(record)])
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    by_name = {entry["PUTIO_MIRROR_ITEM_NAME"]: entry for entry in seen(record)}
    assert set(by_name) == {"Show S01", "film.mkv"}
    assert by_name["Show S01"]["PUTIO_MIRROR_ITEM_PATH"] == str(mirror.downloads / "Show S01")
    assert by_name["Show S01"]["PUTIO_MIRROR_ITEM_ID"] == str(show)
    assert by_name["film.mkv"]["PUTIO_MIRROR_ITEM_ID"] == str(film)
    assert all(entry["exists"] for entry in by_name.values()), "placed before the hook runs"
    assert {entry["PUTIO_MIRROR_EVENT"] for entry in by_name.values()} == {"item_placed"}
    assert mirror.run("sync").code == ExitCode.OK
    assert len(seen(record)) == 2, "an item placed once is announced once"


def test_a_hostile_name_reaches_the_hook_verbatim_and_is_never_run(
    mirror: Mirror, tmp_path: Path
) -> None:
    script, record = recorder(tmp_path)
    name = "$(touch PWNED); `touch PWNED2` 'x' ;touch PWNED3 && rm -rf ~.mkv"
    mirror.fake.add_file(name, size=100)
    with_hook(mirror, [sys.executable, str(script), str(record), "0"])
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    (entry,) = seen(record)
    assert entry["PUTIO_MIRROR_ITEM_NAME"] == name  # the local name, which equals put.io's
    assert entry["PUTIO_MIRROR_ITEM_PATH"] == str(mirror.downloads / name)
    assert entry["argv"] == [str(record), "0"], "the item never becomes an argument"
    leftovers = [path.name for path in Path.cwd().glob("PWNED*")]
    leftovers += [path.name for path in mirror.root.rglob("PWNED*")]
    assert leftovers == []


def test_a_failing_hook_is_a_warning_and_the_run_still_succeeds(
    mirror: Mirror, tmp_path: Path
) -> None:
    script, record = recorder(tmp_path)
    mirror.fake.add_file("film.mkv", size=100)
    with_hook(mirror, [sys.executable, str(script), str(record), "3"])
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert len(seen(record)) == 1
    assert "hooks.on_item_placed for film.mkv:" in result.err and "exited 3" in result.err
    assert "film.mkv" in mirror.local_files()


def test_a_hook_that_does_not_start_is_a_warning(mirror: Mirror, tmp_path: Path) -> None:
    mirror.fake.add_file("film.mkv", size=100)
    with_hook(mirror, [str(tmp_path / "no-such-program")])
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert "cannot start" in result.err and "no-such-program" in result.err


def test_a_hook_that_outlives_its_timeout_is_killed_with_its_children(
    mirror: Mirror, tmp_path: Path
) -> None:
    mirror.fake.add_file("film.mkv", size=100)
    marker = tmp_path / "child-survived"
    # a child that would write the marker after 3 s, and a parent that waits for it
    child = f"import time; time.sleep(3); open({str(marker)!r}, 'w').close()"
    parent = (
        "import subprocess, sys; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); "
        "import time; time.sleep(30)"
    )
    with_hook(mirror, [sys.executable, "-c", parent], timeout_seconds=0.5)
    started = time.monotonic()
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert time.monotonic() - started < 15
    assert "was killed after 0.5 s (hooks.timeout_seconds)" in result.err
    time.sleep(3.5)
    assert not marker.exists(), "the hook's children die with it"


def test_a_hook_that_leaves_a_job_in_the_background_is_done_when_it_exits(
    mirror: Mirror, tmp_path: Path
) -> None:
    # `scan "$PUTIO_MIRROR_ITEM_PATH" &` in a hook script: the job holds the hook's error
    # output open, and the run waited for it until the timeout, then killed it.
    mirror.fake.add_file("film.mkv", size=100)
    marker = tmp_path / "job-done"
    job = f"import time; time.sleep(6); open({str(marker)!r}, 'w').close()"
    hook = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {job!r}])"
    with_hook(mirror, [sys.executable, "-c", hook], timeout_seconds=30)
    started = time.monotonic()
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert time.monotonic() - started < 5
    assert "hooks.on_item_placed" not in result.err
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the job the hook left running is its own business"


def test_a_hook_that_writes_megabytes_of_errors_is_quoted_by_its_last_words(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("film.mkv", size=100)
    noisy = "import sys; sys.stderr.write('x' * 20_000_000 + 'the last words'); sys.exit(4)"
    with_hook(mirror, [sys.executable, "-c", noisy])
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    (line,) = [line for line in result.err.splitlines() if "hooks.on_item_placed" in line]
    assert "exited 4" in line and line.endswith("the last words") and len(line) < 600


def test_a_hook_written_as_a_shell_string_is_refused(mirror: Mirror) -> None:
    mirror.write_config(hooks={"on_item_placed": "notify-plex $PUTIO_MIRROR_ITEM_PATH"})
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE
    assert "hooks.on_item_placed" in result.err and "list of arguments" in result.err


def test_sonarr_and_radarr_are_asked_to_import_each_placed_item(mirror: Mirror) -> None:
    show = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e01.mkv", show, size=1000)
    with receiving(api_key="sonarr-key") as sonarr, receiving(api_key="radarr-key") as radarr:
        mirror.write_config(
            arr=[
                {"url": f"{sonarr.url}/", "api_key": "sonarr-key", "kind": "sonarr"},
                {"url": radarr.url, "api_key": "radarr-key", "kind": "radarr"},
            ]
        )
        result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    placed = str(mirror.downloads / "Show S01")
    (to_sonarr,) = sonarr.requests
    assert to_sonarr.path == "/api/v3/command"
    assert to_sonarr.headers["x-api-key"] == "sonarr-key"
    assert to_sonarr.body == {"name": "DownloadedEpisodesScan", "path": placed}
    (to_radarr,) = radarr.requests
    assert to_radarr.body == {"name": "DownloadedMoviesScan", "path": placed}
    assert "import" not in result.err


def test_an_arr_that_refuses_the_key_is_a_warning_not_a_failed_run(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=100)
    with receiving(api_key="right-key") as radarr:
        mirror.write_config(arr=[{"url": radarr.url, "api_key": "wrong-key", "kind": "radarr"}])
        result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert len(radarr.requests) == 1
    assert "asking for an import of film.mkv: radarr at" in result.err
    assert "HTTP 401 (check arr.api_key)" in result.err
    assert "wrong-key" not in result.err


def test_an_arr_that_does_not_answer_is_asked_once_a_run_not_once_an_item(
    mirror: Mirror,
) -> None:
    # Each placed item waited out the *arr's timeout (30 s) at the end of the run: with a
    # hundred items and the *arr down, the run (and the timer's next one) waited 50 minutes.
    # Here it takes each connection and closes it without a word (down behind a proxy).
    for number in range(3):
        mirror.fake.add_file(f"film{number}.mkv", size=100)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        taken = []

        def take() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:
                    return
                taken.append(connection)
                connection.close()

        threading.Thread(target=take, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        mirror.write_config(arr=[{"url": url, "api_key": "key", "kind": "radarr"}])
        result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert len(mirror.local_files()) == 3
    assert len(taken) == 1, "asked once, then let be for the rest of the run"
    told = [line for line in result.err.splitlines() if "radarr at" in line]
    assert len(told) == 3 and "not asked again in this run" in told[0]
    assert all("not asked: it did not answer earlier in this run" in line for line in told[1:])
    assert mirror.run("sync").code == ExitCode.OK  # nothing new: nobody is asked


def test_a_hook_that_hangs_is_killed_once_a_run_not_once_an_item(
    mirror: Mirror, tmp_path: Path
) -> None:
    for number in range(3):
        mirror.fake.add_file(f"film{number}.mkv", size=100)
    record = tmp_path / "started"
    hang = f"import time; open({str(record)!r}, 'a').write('started\\n'); time.sleep(30)"
    with_hook(mirror, [sys.executable, "-c", hang], timeout_seconds=1)
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert record.read_text() == "started\n", "run once, then let be for the rest of the run"
    told = [line for line in result.err.splitlines() if "hooks.on_item_placed" in line]
    assert len(told) == 3 and "not run again in this run" in told[0]
    assert all("not run: it hung earlier in this run" in line for line in told[1:])
