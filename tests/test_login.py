"""`putio-mirror login` / `logout` against the fake put.io's device-code endpoints."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from putio_mirror.core.errors import AuthError
from putio_mirror.fakeputio import FakePutio, LoggedRequest
from putio_mirror.putio.oauth import DeviceLogin
from tests.mirror_env import Mirror

APP_ID = 4242
FAST = ("--poll-interval", "0.01")


@pytest.fixture
def fresh(mirror: Mirror) -> Mirror:
    """A mirror with an OAuth app id configured and no token file yet."""
    mirror.write_config(putio={"oauth_app_id": APP_ID})
    (mirror.root / "token").unlink()
    return mirror


def polls(fake: FakePutio) -> list[LoggedRequest]:
    return [r for r in fake.requests if r.path.startswith("/v2/oauth2/oob/code/")]


def test_login_shows_the_code_polls_until_linked_and_stores_the_token_0600(
    fresh: Mirror,
) -> None:
    fresh.fake.oob_link_after_polls = 3
    result = fresh.run("login", *FAST)
    assert result.code == 0, result.err
    token_file = fresh.root / "token"
    assert token_file.read_text() == fresh.fake.token + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    (asked,) = [r for r in fresh.fake.requests if r.path == "/v2/oauth2/oob/code"]
    assert asked.query["app_id"] == str(APP_ID) and "Authorization" not in asked.headers
    code = next(iter(fresh.fake.world.device_codes))
    assert code in result.out and "put.io/link" in result.out
    assert len(polls(fresh.fake)) == 3
    assert "Logged in to put.io as fakeputio" in result.out
    assert [p.name for p in fresh.root.iterdir() if p.name.startswith(".token")] == []
    assert fresh.run("files", "list").code == 0  # the stored token works


def test_login_linked_by_the_person_at_put_io_link_and_polls_survive_put_io_trouble(
    fresh: Mirror,
) -> None:
    fake = fresh.fake

    def link_on_third_poll(request: LoggedRequest) -> None:
        if len(polls(fake)) == 3:
            fake.link_device()

    fake.on_request = link_on_third_poll
    fake.inject("/v2/oauth2/oob/code/*", status=503, times=1)
    result = fresh.run("login", *FAST)
    assert result.code == 0, result.err
    assert (fresh.root / "token").read_text().strip() == fake.token
    assert [r.status for r in polls(fake)][:2] == [503, 200]


def test_expired_code_fails_with_exit_4_and_a_hint_and_stores_nothing(fresh: Mirror) -> None:
    fake = fresh.fake
    fake.on_request = lambda request: fake.expire_device_code() if polls(fake) else None
    result = fresh.run("login", *FAST)
    assert result.code == 4
    assert "expired" in result.err and "putio-mirror login" in result.err
    assert not (fresh.root / "token").exists()


def test_a_token_put_io_refuses_is_never_stored(fresh: Mirror) -> None:
    fresh.fake.oob_link_after_polls = 1
    fresh.fake.revoke_token()
    result = fresh.run("login", *FAST)
    assert result.code == 4
    assert not (fresh.root / "token").exists()


def test_login_without_an_app_id_explains_how_to_get_one(mirror: Mirror) -> None:
    result = mirror.run("login", *FAST)
    assert result.code == 2
    assert "oauth_app_id" in result.err
    assert "app.put.io/settings/account/oauth/apps" in result.err
    assert mirror.fake.requests == []


def test_app_id_option_wins_over_the_config(fresh: Mirror) -> None:
    fresh.fake.oob_link_after_polls = 1
    assert fresh.run("login", "--app-id", "77", *FAST).code == 0
    (asked,) = [r for r in fresh.fake.requests if r.path == "/v2/oauth2/oob/code"]
    assert asked.query["app_id"] == "77"


def test_login_gives_up_after_the_wait_with_exit_4(fake_putio: FakePutio) -> None:
    moments = iter(range(0, 1000, 30))
    with DeviceLogin(fake_putio.api_url) as device:
        code = device.new_code(APP_ID, "test")
        with pytest.raises(AuthError, match="not linked within 2 minutes"):
            device.wait_for_token(
                code.code,
                interval=30,
                budget=120,
                sleep=lambda _: None,
                clock=lambda: next(moments),
            )
    assert 3 <= len(polls(fake_putio)) <= 5


def test_login_without_token_file_writes_the_default_one_that_runs_then_use(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PUTIO_TOKEN", raising=False)
    document = yaml.safe_load(mirror.config.read_text())
    del document["putio"]["token_file"]
    document["putio"]["oauth_app_id"] = APP_ID
    mirror.config.write_text(yaml.safe_dump(document))
    assert mirror.run("files", "list").code == 2  # no token yet
    mirror.fake.oob_link_after_polls = 1
    result = mirror.run("login", *FAST)
    assert result.code == 0, result.err
    stored = tmp_path / "xdg" / "putio-mirror" / "token"
    assert stored.read_text().strip() == mirror.fake.token
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert "Note:" not in result.out
    assert mirror.run("files", "list").code == 0


def test_login_says_when_an_inline_token_would_shadow_the_stored_one(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    document = yaml.safe_load(mirror.config.read_text())
    del document["putio"]["token_file"]
    document["putio"] |= {"oauth_app_id": APP_ID, "token": "an-old-token"}
    mirror.config.write_text(yaml.safe_dump(document))
    mirror.fake.oob_link_after_polls = 1
    result = mirror.run("login", *FAST)
    assert result.code == 0 and "putio.token in the config file takes precedence" in result.out


def test_logout_revokes_the_token_and_removes_the_file(mirror: Mirror) -> None:
    result = mirror.run("logout")
    assert result.code == 0, result.err
    assert "revoked" in result.out and not (mirror.root / "token").exists()
    assert mirror.fake.token_revoked
    assert mirror.run("sync").code == 2  # no token any more: a config problem with a hint
    again = mirror.run("logout")
    assert again.code == 0 and "nothing to forget" in again.out


def test_logout_removes_the_file_even_if_put_io_will_not_revoke(mirror: Mirror) -> None:
    mirror.fake.revoke_token()
    result = mirror.run("logout")
    assert result.code == 0 and "did not revoke" in result.out
    assert not (mirror.root / "token").exists()


def test_ctrl_c_while_waiting_exits_130_and_stores_nothing(fresh: Mirror) -> None:
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it so:
    # give the child a terminal's default, as a person pressing Ctrl-C has.
    command = ["--config", str(fresh.config), "login", "--poll-interval", "0.05"]
    process = subprocess.Popen(
        [sys.executable, "-m", "putio_mirror", *command],
        env={k: v for k, v in os.environ.items() if k != "PUTIO_TOKEN"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not polls(fresh.fake) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert not (fresh.root / "token").exists()


def test_a_token_file_that_cannot_be_written_is_refused_before_put_io_is_asked(
    fresh: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # It was found only once the person had linked the code: a crash, and the token lost.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where a crash report goes
    in_the_way = fresh.root / "secrets"
    in_the_way.write_text("a file where a folder should be\n")
    fresh.write_config(putio={"oauth_app_id": APP_ID, "token_file": str(in_the_way / "token")})
    fresh.fake.oob_link_after_polls = 1
    result = fresh.run("login", *FAST)
    assert result.code == 2, result.err
    assert f"{in_the_way / 'token'}" in result.err and "hit a bug" not in result.err
    assert fresh.fake.requests == [], "no code is asked for that could not be kept"
