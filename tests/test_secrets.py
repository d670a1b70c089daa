"""The token: checked at load whatever its source, and kept out of every report and message."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from putio_mirror.config.schema import Secret
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ConfigError, ItemError
from tests.mirror_env import Mirror

TOKEN = "Q7ZK4WXR2M9TLV3H"  # shaped like a put.io token


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def config_with_token_file(tmp_path: Path, content: str) -> tuple[Path, Path]:
    token_file = tmp_path / "token"
    token_file.write_text(content, encoding="utf-8")
    token_file.chmod(0o600)
    config = tmp_path / "mirror.yaml"
    config.write_text(f"putio:\n  token_file: {token_file}\n", encoding="utf-8")
    config.chmod(0o600)
    return config, token_file


def load_error(config: Path | None, env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env)
    return caught.value


def test_token_file_with_a_comment_line_is_a_config_error_naming_the_file_not_the_token(
    env: dict[str, str], tmp_path: Path
) -> None:
    config, token_file = config_with_token_file(tmp_path, f"{TOKEN}\n# my put.io token\n")
    error = load_error(config, env)
    assert error.exit_code == 2
    (problem,) = error.problems
    assert str(token_file) in problem and "one line" in problem
    for text in (str(error), error.hint, problem, repr(error)):
        assert TOKEN not in text


@pytest.mark.parametrize(
    "content", [f"{TOKEN}\n", f"\n  {TOKEN}  \n\n", f"{TOKEN}\r\n", TOKEN], ids=repr
)
def test_token_file_may_hold_one_line_with_blank_lines_and_newlines_around(
    env: dict[str, str], tmp_path: Path, content: str
) -> None:
    config, _ = config_with_token_file(tmp_path, content)
    assert load_settings(config, env).token == Secret(TOKEN)


@pytest.mark.parametrize(
    "bad", [f"{TOKEN}\nsecond", f"{TOKEN[:4]} {TOKEN[4:]}", f"{TOKEN}\x07", f"{TOKEN}é"], ids=repr
)
@pytest.mark.parametrize("source", ["environment", "token_file", "config"])
def test_a_token_that_is_not_one_printable_line_is_refused_from_every_source(
    env: dict[str, str], tmp_path: Path, bad: str, source: str
) -> None:
    config = tmp_path / "mirror.yaml"
    if source == "environment":
        env = env | {"PUTIO_TOKEN": bad}
        config.write_text("log_level: INFO\n", encoding="utf-8")
    elif source == "token_file":
        config, _ = config_with_token_file(tmp_path, bad)
    else:
        config.write_text(f"putio:\n  token: {bad!r}\n".replace("'", '"'), encoding="utf-8")
    config.chmod(0o600)
    error = load_error(config, env)
    (problem,) = error.problems
    expected = {"environment": "$PUTIO_TOKEN", "token_file": "putio.token_file"}
    assert expected.get(source, "putio.token") in problem
    assert TOKEN not in problem and TOKEN[4:] not in problem


def test_token_file_with_a_comment_exits_2_naming_the_file_and_never_prints_the_token(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(mirror.root / "xdg"))
    (mirror.root / "token").write_text(f"{mirror.fake.token}\n# from app.put.io\n")
    result = mirror.run("sync")
    assert result.code == 2, result.err
    assert str(mirror.root / "token") in result.err
    assert mirror.fake.token not in result.err + result.out
    assert not (mirror.root / "xdg").exists(), "a config problem is no crash"
    assert mirror.fake.requests == []


def crash_with(mirror: Mirror, monkeypatch: pytest.MonkeyPatch, message: str) -> tuple[str, Path]:
    """Make the next run hit a bug whose message is ``message``; return stderr and the report."""
    import putio_mirror.app.run

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError(message)

    monkeypatch.setattr(putio_mirror.app.run, "run_once", bug)
    result = mirror.run("sync")
    assert result.code == 3, result.err
    (report,) = (mirror.root / "xdg" / "putio-mirror" / "crash-reports").iterdir()
    return result.err, report


def test_crash_report_is_private_and_redacts_the_token_from_a_token_file(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(mirror.root / "xdg"))
    monkeypatch.delenv("PUTIO_TOKEN", raising=False)  # the token comes from token_file only
    token = mirror.fake.token
    err, report = crash_with(
        mirror, monkeypatch, f"Invalid header value b'token {token}\\n# comment'"
    )
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    text = report.read_text()
    assert "ValueError" in text and "Invalid header value" in text
    assert token not in text
    assert "putio-mirror hit a bug: ValueError" in err and token not in err


@pytest.mark.parametrize(
    "leak",
    [
        "Authorization: token {other}",
        "{{'Authorization': 'Bearer {other}'}}",
        "Invalid header value b'token {other}\\n#'",
        "GET https://node.example/download/1?u=x&oauth_token={other}&tunnel=1",
    ],
)
def test_crash_report_and_message_redact_credential_shaped_values(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, leak: str
) -> None:
    # A token that is not the configured one (an old one, a second account's) still goes.
    monkeypatch.setenv("XDG_STATE_HOME", str(mirror.root / "xdg"))
    other = "ZX81SPECTRUM48K"
    err, report = crash_with(mirror, monkeypatch, leak.format(other=other))
    assert other not in report.read_text() and other not in err
    assert "********" in err


def test_log_lines_and_error_messages_never_show_a_credential(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    import putio_mirror.app.run

    other = "ZX81SPECTRUM48K"

    def run(*args: object, **kwargs: object) -> None:
        url = f"https://node.example/download/1?u=x&oauth_token={other}"
        logging.getLogger("putio_mirror.test").warning("fetching %s", url)
        raise ItemError(f"the node said: Authorization: Bearer {other}", "try again")

    monkeypatch.setattr(putio_mirror.app.run, "run_once", run)
    result = mirror.run("sync")
    assert result.code == 1
    assert "oauth_token=********" in result.err and "Bearer ********" in result.err
    assert other not in result.err + result.out
