"""Loading the YAML configuration into Settings: defaults, lookup, problems, the token."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from putio_mirror.config.settings import (
    MirrorFile,
    Secret,
    Settings,
    default_config_path,
    load_settings,
)
from putio_mirror.core.errors import ConfigError
from putio_mirror.core.state import Policy, SafetyLimits

EXAMPLE = Path(__file__).resolve().parent.parent / "mirror.example.yaml"
TOKEN = "S3CRET-token-value-1234567890"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A home of its own, in the environment given to load_settings and in the process's
    (where the default config and state folders are looked up)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    return {"HOME": str(home)}


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def problems_of(path: Path | None, env: dict[str, str], **kwargs: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env, require_token=False, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


# -- defaults and the example ---------------------------------------------------------


def test_defaults_apply_when_there_is_no_config_file(env: dict[str, str]) -> None:
    settings = load_settings(None, env, require_token=False)
    home = Path(env["HOME"])
    assert settings.config_path is None
    assert settings.token is None
    assert settings.api_url == "https://api.put.io/v2"
    assert settings.blackhole_dir == home / "putio" / "blackhole"
    assert settings.download_dir == home / "putio" / "downloads"
    assert settings.staging_dir == home / "putio" / "downloads" / ".putio-mirror-staging"
    assert settings.journal_url == f"sqlite:///{home}/.local/state/putio-mirror/journal.sqlite3"
    assert settings.log_file is None and settings.log_level == "INFO"
    assert (settings.chunk_size, settings.timeout, settings.max_outage) == (256 * 1024, 30, 300)
    assert settings.schedule.always_open
    assert settings.policy == Policy()
    assert settings.warnings == ()


def test_example_file_loads_and_states_exactly_the_defaults(env: dict[str, str]) -> None:
    example = load_settings(EXAMPLE, env, require_token=False)
    defaults = load_settings(None, env, require_token=False)
    assert example.config_path == EXAMPLE
    assert dataclasses.replace(example, config_path=None) == defaults


def test_example_file_documents_every_option() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

    def options(model: type[BaseModel], values: dict[str, object]) -> None:
        assert set(values) == set(model.model_fields), model.__name__
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                options(annotation, values[name])  # type: ignore[arg-type]

    options(MirrorFile, data)


def test_xdg_state_home_moves_the_default_journal(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = load_settings(None, env, require_token=False)
    assert settings.journal_url == f"sqlite:///{tmp_path}/state/putio-mirror/journal.sqlite3"


def test_options_from_the_file_become_plain_settings(env: dict[str, str], tmp_path: Path) -> None:
    config = write(
        tmp_path / "mirror.yaml",
        """
paths:
  downloads: $MEDIA/incoming
  staging: ~/staging
  journal: ~/journal.db
  log_file: /var/log/putio-mirror.log
transfers:
  seeding_min_ratio: 1.5
  manage_foreign: true
download:
  chunk_size_kb: 1024
  remote_root: 12
schedule:
  windows: "Mon-Fri 00:05-05:55"
safety:
  max_cancels: 3
log_level: debug
""",
    )
    settings = load_settings(config, env | {"MEDIA": "/srv/media"}, require_token=False)
    home = Path(env["HOME"])
    assert settings.download_dir == Path("/srv/media/incoming")
    assert settings.staging_dir == home / "staging"
    assert settings.journal_url == f"sqlite:///{home}/journal.db"
    assert settings.log_file == Path("/var/log/putio-mirror.log")
    assert settings.chunk_size == 1024 * 1024
    assert settings.log_level == "DEBUG"
    assert settings.policy.manage_foreign_transfers and settings.policy.seeding_min_ratio == 1.5
    assert settings.policy.remote_root_id == 12
    assert settings.policy.limits == SafetyLimits(max_cancels=3)
    assert settings.schedule.is_open(datetime(2024, 3, 4, 1, 0))  # a Monday night
    assert not settings.schedule.is_open(datetime(2024, 3, 9, 1, 0))  # a Saturday


def test_section_with_every_option_commented_out_means_defaults(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(tmp_path / "mirror.yaml", "download:\n  # chunk_size_kb: 512\nschedule:\n")
    assert load_settings(config, env, require_token=False).chunk_size == 256 * 1024


def test_server_journal_url_is_kept_and_its_password_hidden_in_repr(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = "postgresql+psycopg://mirror:pa$$word@db.local/mirror"
    config = write(tmp_path / "mirror.yaml", f"paths:\n  journal: '{url}'\n")
    settings = load_settings(config, env, require_token=False)
    assert settings.journal_url == url
    assert "pa$$word" not in repr(settings)
    assert "mirror:***@db.local" in repr(settings)


# -- problems ------------------------------------------------------------------------


def test_every_mistake_in_a_file_is_reported_at_once_with_its_dotted_path(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(
        tmp_path / "mirror.yaml",
        """
download:
  chunk_size_kb: abc
  chunk_sise_kb: 512
  window: "00:05-05:55"
schedule:
  windows: ["00:05-05:55", "25:00-26:00"]
colour: blue
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env, require_token=False)
    error = caught.value
    assert error.problems == (
        "mirror.yaml: download.chunk_size_kb: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')",
        "mirror.yaml: download.chunk_sise_kb: unknown option (did you mean 'chunk_size_kb'?)",
        "mirror.yaml: download.window: unknown option "
        "(did you mean 'schedule.windows'? it is in another section)",
        "mirror.yaml: schedule.windows[1]: '25:00' is not a time of day (00:00 to 23:59)",
        "mirror.yaml: colour: unknown option",
    )
    assert str(config) in error.message and "5 problems" in error.message
    assert "putio-mirror config init" in error.hint


def test_a_variable_a_path_uses_that_is_not_set_is_a_problem_not_a_folder_named_after_it(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a timer, $MEDIA (set in a login shell) was missing, and a run made a folder
    # named "$MEDIA" in its current folder, and mirrored the account into it.
    monkeypatch.chdir(tmp_path)
    config = write(
        tmp_path / "mirror.yaml",
        """
putio:
  token_file: ${CREDENTIALS_DIRECTORY}/putio-token
paths:
  downloads: $MEDIA/incoming
  blackhole: $MEDIA/blackhole
  staging: $EMPTY/staging
  journal: $STATE/journal.sqlite3
  log_file: $HOME/mirror.log
""",
    )
    assert problems_of(config, env | {"EMPTY": ""}, check_paths=True) == (
        "mirror.yaml: putio.token_file: uses $CREDENTIALS_DIRECTORY, which is not set",
        "mirror.yaml: paths.blackhole: uses $MEDIA, which is not set",
        "mirror.yaml: paths.downloads: uses $MEDIA, which is not set",
        "mirror.yaml: paths.staging: uses $EMPTY, which is empty",
        "mirror.yaml: paths.journal: uses $STATE, which is not set",
    )
    assert list(tmp_path.glob("$*")) == []
    set_all = {"CREDENTIALS_DIRECTORY": "/run/c", "MEDIA": "/srv", "EMPTY": "/e", "STATE": "/s"}
    settings = load_settings(config, env | set_all, require_token=False, token_optional=True)
    assert settings.download_dir == Path("/srv/incoming")
    assert settings.journal_url == "sqlite:////s/journal.sqlite3"


def test_a_section_that_is_not_a_mapping_is_a_problem(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", "download: 5\nlog_level: LOUD\n")
    assert problems_of(config, env) == (
        "mirror.yaml: download: should be a section (a mapping of options)",
        "mirror.yaml: log_level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
        "'CRITICAL' (got 'LOUD')",
    )


def test_yaml_syntax_error_names_the_line_and_column(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", "putio:\n  api_url: [unclosed\npaths: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env, require_token=False)
    assert "YAML syntax error at line 3, column" in caught.value.message
    assert str(config) in caught.value.message


def test_a_key_given_twice_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", "download:\n  enabled: true\ndownload: {}\n")
    with pytest.raises(ConfigError, match="line 3") as caught:
        load_settings(config, env, require_token=False)
    assert "given twice" in caught.value.message


def test_a_top_level_that_is_not_a_mapping_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", "- putio\n- paths\n")
    with pytest.raises(ConfigError, match="top level should be a mapping"):
        load_settings(config, env, require_token=False)


def test_check_paths_reports_a_file_where_a_folder_should_be(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = write(tmp_path / "downloads", "not a folder")
    config = write(tmp_path / "mirror.yaml", f"paths:\n  downloads: {blocker}\n")
    assert load_settings(config, env, require_token=False).download_dir == blocker
    problems = problems_of(config, env, check_paths=True)
    assert f"mirror.yaml: paths.downloads: {blocker} exists but is not a folder" in problems
    assert any(
        problem.startswith("mirror.yaml: paths.staging: cannot create") for problem in problems
    )


# -- overrides -------------------------------------------------------------------------


def test_overrides_apply_on_top_of_the_file(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", "download:\n  chunk_size_kb: 64\n  enabled: false\n")
    overrides = {"schedule.windows": ["00:05-05:55"], "download.chunk_size_kb": 512}
    settings = load_settings(config, env, require_token=False, overrides=overrides)
    assert settings.chunk_size == 512 * 1024
    assert not settings.policy.download
    assert settings.schedule.describe() == "00:05-05:55"


def test_a_bad_override_is_blamed_on_the_command_line(env: dict[str, str]) -> None:
    overrides = {"schedule.windows": ["Mon 07:00-07:00"], "download.chunksize": 1}
    assert problems_of(None, env, overrides=overrides) == (
        "command line: download.chunksize: unknown option (did you mean 'chunk_size_kb'?)",
        "command line: schedule.windows[0]: 'Mon 07:00-07:00' starts and ends at the same "
        "minute; give a real span",
    )


# -- where the file is looked for -------------------------------------------------------


def test_default_config_path_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert default_config_path() == Path("/home/u/.config/putio-mirror/mirror.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    assert default_config_path() == Path("/home/u/.config/putio-mirror/mirror.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "putio-mirror" / "mirror.yaml"


def test_file_in_xdg_config_home_is_used_when_present(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = write(tmp_path / "xdg" / "putio-mirror" / "mirror.yaml", "log_level: ERROR\n")
    settings = load_settings(None, env, require_token=False)
    assert (settings.config_path, settings.log_level) == (config, "ERROR")


def test_putio_mirror_config_wins_over_the_default_location(
    env: dict[str, str], tmp_path: Path
) -> None:
    write(Path(env["HOME"]) / ".config" / "putio-mirror" / "mirror.yaml", "log_level: ERROR\n")
    named = write(tmp_path / "named.yaml", "log_level: WARNING\n")
    settings = load_settings(None, env | {"PUTIO_MIRROR_CONFIG": str(named)}, require_token=False)
    assert (settings.config_path, settings.log_level) == (named, "WARNING")


def test_explicit_path_wins_over_putio_mirror_config(env: dict[str, str], tmp_path: Path) -> None:
    named = write(tmp_path / "named.yaml", "log_level: WARNING\n")
    explicit = write(tmp_path / "explicit.yaml", "log_level: DEBUG\n")
    env["PUTIO_MIRROR_CONFIG"] = str(named)
    assert load_settings(explicit, env, require_token=False).log_level == "DEBUG"


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_named_config_file_that_does_not_exist_is_an_error(
    how: str, env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.yaml"
    if how == "environment":
        env["PUTIO_MIRROR_CONFIG"] = str(missing)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(missing if how == "argument" else None, env, require_token=False)


# -- the token ---------------------------------------------------------------------------


def test_token_precedence_is_environment_then_token_file_then_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    token_file = write(tmp_path / "token", "  from-token-file\n")
    both = write(
        tmp_path / "both.yaml", f"putio:\n  token: from-file\n  token_file: {token_file}\n"
    )
    only_file = write(tmp_path / "only.yaml", "putio:\n  token: from-file\n")
    with_env = env | {"PUTIO_TOKEN": "from-env"}
    assert load_settings(both, with_env).token == Secret("from-env")
    assert load_settings(both, env).token == Secret("from-token-file")
    assert load_settings(only_file, env).token == Secret("from-file")


def test_missing_token_raises_with_a_hint_how_to_set_one(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    assert "token" in caught.value.message
    assert "PUTIO_TOKEN" in caught.value.hint and "token_file" in caught.value.hint
    assert load_settings(None, env, require_token=False).token is None


def test_unreadable_token_file_is_a_problem(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path / "mirror.yaml", f"putio:\n  token_file: {tmp_path / 'absent'}\n")
    (problem,) = problems_of(config, env)
    assert problem.startswith(f"mirror.yaml: putio.token_file: cannot read {tmp_path / 'absent'}")


def test_the_token_never_appears_in_problems_messages_or_repr(
    env: dict[str, str], tmp_path: Path
) -> None:
    wrong = write(
        tmp_path / "mirror.yaml",
        f"putio:\n  token: [{TOKEN}]\n  tokn: {TOKEN}\ndownload:\n  chunk_size_kb: x\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(wrong, env)
    error = caught.value
    assert len(error.problems) == 3
    for text in (str(error), error.hint, *error.problems, repr(error)):
        assert TOKEN not in text
    # A chained pydantic error would carry the input into tracebacks and crash reports.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    good = write(tmp_path / "good.yaml", f"putio:\n  token: {TOKEN}\n")
    settings = load_settings(good, env)
    assert settings.token is not None and settings.token.reveal() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert str(settings.token) == repr(settings.token) == "Secret('********')"


def test_yaml_syntax_error_does_not_quote_the_line_holding_the_token(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(tmp_path / "mirror.yaml", f"putio:\n  token: {TOKEN}: oops\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env)
    assert TOKEN not in f"{caught.value.message} {caught.value.hint}"


def test_group_readable_file_holding_the_token_gets_a_chmod_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(tmp_path / "mirror.yaml", f"putio:\n  token: {TOKEN}\n", mode=0o644)
    (warning,) = load_settings(config, env).warnings
    assert str(config) in warning and f"chmod 600 {config}" in warning
    assert TOKEN not in warning


def test_private_file_holding_the_token_gets_no_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(tmp_path / "mirror.yaml", f"putio:\n  token: {TOKEN}\n", mode=0o600)
    assert load_settings(config, env).warnings == ()


def test_readable_token_file_gets_a_warning_but_a_tokenless_config_does_not(
    env: dict[str, str], tmp_path: Path
) -> None:
    token_file = write(tmp_path / "token", TOKEN, mode=0o640)
    config = write(tmp_path / "mirror.yaml", f"putio:\n  token_file: {token_file}\n", mode=0o644)
    (warning,) = load_settings(config, env).warnings
    assert f"chmod 600 {token_file}" in warning


def test_settings_are_frozen(env: dict[str, str]) -> None:
    settings = load_settings(None, env, require_token=False)
    assert isinstance(settings, Settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.chunk_size = 1  # type: ignore[misc]


# -- the staging folder -------------------------------------------------------------------


@pytest.mark.parametrize(
    "staging",
    ["{downloads}/partial", "{downloads}/sub/deeper", "{downloads}", "{root}"],
)
def test_staging_where_a_put_io_item_could_land_or_holding_the_downloads_is_refused(
    env: dict[str, str], tmp_path: Path, staging: str
) -> None:
    downloads = tmp_path / "media"
    where = staging.format(downloads=downloads, root=tmp_path)
    config = write(
        tmp_path / "mirror.yaml", f"paths:\n  downloads: {downloads}\n  staging: {where}\n"
    )
    (problem,) = problems_of(config, env)
    assert problem.startswith("mirror.yaml: paths.staging:")
    assert "leave paths.staging unset" in problem


@pytest.mark.parametrize(
    "staging", ["{downloads}/.putio-mirror-parts", "{downloads}/.PutIO-Mirror/x", "{root}/parts"]
)
def test_staging_inside_downloads_is_fine_under_a_name_put_io_items_never_get(
    env: dict[str, str], tmp_path: Path, staging: str
) -> None:
    downloads = tmp_path / "media"
    where = staging.format(downloads=downloads, root=tmp_path)
    config = write(
        tmp_path / "mirror.yaml", f"paths:\n  downloads: {downloads}\n  staging: {where}\n"
    )
    assert load_settings(config, env, require_token=False).staging_dir == Path(where)


def test_a_bare_bwlimit_number_is_kib_per_second_as_in_rclone(
    env: dict[str, str], tmp_path: Path
) -> None:
    from putio_mirror.core.bandwidth import parse_timetable

    config = write(tmp_path / "mirror.yaml", "download:\n  bwlimit: 10\n")
    settings = load_settings(config, env, require_token=False)
    assert parse_timetable(settings.bwlimit).limit_at(datetime(2024, 3, 4, 1, 0)) == 10 * 1024
    assert problems_of(write(tmp_path / "bad.yaml", "download:\n  bwlimit: true\n"), env)


def test_a_config_file_without_fault_is_not_blamed_for_a_bad_flag(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write(tmp_path / "mirror.yaml", "download:\n  chunk_size_kb: 512\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env, require_token=False, overrides={"schedule.windows": ["22-23"]})
    assert caught.value.message == "the command line has 1 problem"
    assert "mirror.yaml" not in caught.value.message + caught.value.hint
    assert "--help" in caught.value.hint
