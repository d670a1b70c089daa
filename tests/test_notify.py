"""Notifications through Apprise reach a local receiver (its ``json://`` target) for the
events asked for: an item placed, a file failing, a full disk, a refused token; a
notification that fails is a warning, never a failed run; apprise is imported only when
there is something to send."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ExitCode
from putio_mirror.local.staging import part_path
from tests.mirror_env import Mirror
from tests.receivers import Receiver, receiving


def notify_to(mirror: Mirror, receiver: Receiver, **notify: Any) -> None:
    mirror.write_config(notify={"urls": [f"json://127.0.0.1:{receiver.port}/notify"], **notify})


def titles(receiver: Receiver) -> list[str]:
    return [request.body["title"] for request in receiver.requests]


def test_a_placed_item_is_notified_with_its_path(mirror: Mirror) -> None:
    folder = mirror.fake.add_folder("Show S01")
    mirror.fake.add_file("e01.mkv", folder, size=1000)
    mirror.fake.add_file("e02.mkv", folder, size=1000)
    mirror.fake.add_file("film.mkv", size=500)
    with receiving() as receiver:
        notify_to(mirror, receiver)
        result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert sorted(titles(receiver)) == [
        "putio-mirror: Show S01 is ready",
        "putio-mirror: film.mkv is ready",
    ]
    bodies = {request.body["message"] for request in receiver.requests}
    assert f"Placed in {mirror.downloads / 'Show S01'}" in bodies
    assert {request.path for request in receiver.requests} == {"/notify"}
    assert {request.body["type"] for request in receiver.requests} == {"success"}
    assert "Notifying" not in result.err, "apprise's chatter only at -vv"


def test_only_the_events_asked_for_are_sent_and_a_refused_token_is_one(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=500)
    with receiving() as receiver:
        notify_to(mirror, receiver, events=["token_refused"])
        assert mirror.run("sync").code == ExitCode.OK
        assert receiver.requests == []
        (mirror.root / "token").write_text("not-the-token\n")
        refused = mirror.run("sync")
    assert refused.code == ExitCode.REMOTE_FATAL, refused.err
    assert titles(receiver) == ["putio-mirror: put.io refused the token"]
    assert receiver.requests[0].body["type"] == "failure"


def test_a_file_that_fails_is_notified_with_why(mirror: Mirror, tmp_path: Path) -> None:
    planted = mirror.fake.add_file("planted.mkv", size=300_000)
    mirror.fake.add_file("fine.mkv", size=300_000)
    staging = mirror.downloads / ".putio-mirror-staging"
    staging.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_bytes(b"never written through")
    part_path(staging, planted).symlink_to(outside)  # this file fails, alone
    with receiving() as receiver:
        notify_to(mirror, receiver, events=["item_failed"])
        result = mirror.run("sync")
    assert result.code == ExitCode.ITEMS_FAILED, result.err
    assert titles(receiver) == ["putio-mirror: planted.mkv failed"]
    assert "symlink" in receiver.requests[0].body["message"]


def test_a_full_disk_is_notified_once_per_run_not_once_per_file(mirror: Mirror) -> None:
    for number in range(3):
        mirror.fake.add_file(f"film{number}.mkv", size=1000)
    with receiving() as receiver:
        notify_to(mirror, receiver)
        mirror.write_config(
            notify={"urls": [f"json://127.0.0.1:{receiver.port}/notify"]},
            download={"free_space_margin_mb": 10**12, "parallel_files": 1},
        )
        result = mirror.run("sync")
    assert result.code == ExitCode.ITEMS_FAILED, result.err
    assert titles(receiver) == ["putio-mirror: the disk is full"]


def test_a_dry_run_sends_nothing(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=500)
    with receiving() as receiver:
        notify_to(mirror, receiver)
        assert mirror.run("sync", "--dry-run").code == ExitCode.OK
    assert receiver.requests == []


def test_a_notification_that_fails_is_a_warning_not_a_failed_run(mirror: Mirror) -> None:
    mirror.fake.add_file("film.mkv", size=500)
    with receiving() as receiver:
        port = receiver.port
    # the receiver is gone: nothing listens on its port any more
    mirror.write_config(notify={"urls": [f"json://127.0.0.1:{port}/notify", "nosuch://x"]})
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.err
    assert "film.mkv" in mirror.local_files()
    assert "notification of item_placed failed: json://…: not delivered" in result.err
    assert "nosuch://…: Apprise does not understand this URL" in result.err
    assert f"127.0.0.1:{port}" not in result.err, "URLs hold secrets: only their scheme is said"


def test_a_config_with_something_that_is_no_url_is_refused(mirror: Mirror) -> None:
    mirror.write_config(notify={"urls": ["my-secret-token"]})
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE
    assert "notify.urls" in result.err and "my-secret-token" not in result.err


def test_apprise_is_imported_only_when_a_run_has_something_to_send(mirror: Mirror) -> None:
    probe = (
        "import sys\n"
        "from putio_mirror.cli.main import main\n"
        "code = main(['--config', sys.argv[1], 'sync'])\n"
        "print(json.dumps([code, 'apprise' in sys.modules]))\n"
    )

    def sync_in_a_process() -> list[Any]:
        done = subprocess.run(
            [sys.executable, "-c", "import json\n" + probe, str(mirror.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        answer: list[Any] = json.loads(done.stdout.splitlines()[-1])
        return answer

    with receiving() as receiver:
        assert sync_in_a_process() == [0, False]  # nothing configured
        notify_to(mirror, receiver)
        assert sync_in_a_process() == [0, False]  # configured, nothing happened
        mirror.fake.add_file("film.mkv", size=500)
        assert sync_in_a_process() == [0, True]
    assert titles(receiver) == ["putio-mirror: film.mkv is ready"]


def test_urls_and_api_keys_never_show_in_the_settings_or_a_config_error(
    mirror: Mirror,
) -> None:
    mirror.write_config(
        notify={"urls": ["ntfys://ntfy.sh/secret-topic-1234"]},
        arr=[{"url": "http://127.0.0.1:8989", "api_key": "k3y-0f-s0narr", "kind": "sonarr"}],
    )
    settings = load_settings(mirror.config, {})
    assert settings.outlets.urls == ("ntfys://ntfy.sh/secret-topic-1234",)
    assert settings.outlets.arr[0].api_key == "k3y-0f-s0narr"
    shown = repr(settings)
    assert "secret-topic-1234" not in shown and "k3y-0f-s0narr" not in shown
    mirror.write_config(arr=[{"url": "http://127.0.0.1:8989", "api_key": "k3y-0f-s0narr"}])
    result = mirror.run("sync")
    assert result.code == ExitCode.USAGE and "arr" in result.err and "kind" in result.err
    assert "k3y-0f-s0narr" not in result.err


def test_a_run_that_places_many_items_sends_a_few_messages_then_one_for_the_rest(
    mirror: Mirror,
) -> None:
    """A first sync of a large account placed hundreds of items: one message each went
    past what services accept (ntfy, Pushover and Telegram limit the rate) and buried the
    phone; the first few are told as they come, the rest in one message at the run's end."""
    for number in range(12):
        mirror.fake.add_file(f"film{number:02}.mkv", size=100)
    with receiving() as receiver:
        notify_to(mirror, receiver)
        assert mirror.run("sync").code == ExitCode.OK
    told = titles(receiver)
    assert told[3:] == ["putio-mirror: 9 more items are ready"], told
    first = {title.removeprefix("putio-mirror: ").removesuffix(" is ready") for title in told[:3]}
    rest = receiver.requests[3].body["message"]
    named = {f"film{n:02}.mkv" for n in range(12)}
    assert first < named and all(name in rest for name in named - first), rest
