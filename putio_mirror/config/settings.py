"""The configuration boundary: a YAML file, the environment and CLI overrides → ``Settings``.

pydantic checks the file's shape and collects every problem at once (reading the
file and wording its problems: ``file.py``); the rest of the program only
ever sees ``Settings``, a frozen value of plain types. The put.io token is
wrapped in ``Secret`` from the moment it is read, and no message built here ever
quotes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from putio_mirror.config.expanding import expand, unset_problem
from putio_mirror.config.file import apply_overrides, config_error, read_yaml, validate
from putio_mirror.config.folders import FolderPaths, folder_id, folder_path
from putio_mirror.config.outlets import outlets
from putio_mirror.config.paths import (
    journal_unwritable_reason,
    sqlite_file,
    staging_problems,
    unwritable_reason,
)
from putio_mirror.config.placing import ownership_of, ownership_problems
from putio_mirror.config.rpc import RpcSettings, rpc_settings
from putio_mirror.config.schema import MirrorFile, MountSection, Secret
from putio_mirror.config.token import TOKEN_HINT, permission_warnings, resolve_token, token_file
from putio_mirror.core.errors import ConfigError
from putio_mirror.core.naming import STAGING_DIR_NAME
from putio_mirror.core.state import Filters, Policy, SafetyLimits
from putio_mirror.core.window import Schedule, parse_schedule
from putio_mirror.local.folders import config_folder, default_journal
from putio_mirror.local.ownership import AS_IS, Ownership
from putio_mirror.notify.values import Outlets

CONFIG_ENV = "PUTIO_MIRROR_CONFIG"
# naming.py never gives a put.io item a local name beginning with this: it is ours.
MIB = 1024 * 1024
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


@dataclass(frozen=True)
class MountOptions:
    """The ``mount:`` section: how ``putio-mirror mount`` lists, caches and reads."""

    refresh_seconds: float = 300.0
    cache_max_bytes: int = 256 * 1024 * 1024
    read_ahead_max_bytes: int = 32 * 1024 * 1024
    connections: int = 4
    read_timeout: float = 10.0
    max_outage: float = 30.0
    allow_other: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the program needs to know, as plain frozen values."""

    token: Secret | None
    api_url: str
    upload_url: str
    timeout: float
    blackhole_dir: Path
    download_dir: Path
    staging_dir: Path
    journal_url: str
    log_file: Path | None
    log_level: str
    chunk_size: int
    read_timeout: float
    max_outage: float
    connections: int
    #: None: chosen from the files' sizes each run (``parallel_files: auto``)
    parallel_files: int | None
    bwlimit: str
    free_space_margin: int
    schedule: Schedule
    groom_outside_window: bool
    watch_interval_minutes: float
    #: the put.io folder new transfers save into (None: put.io's default)
    save_parent_id: int | None
    policy: Policy
    rpc: RpcSettings = field(default_factory=RpcSettings)
    config_path: Path | None = None
    warnings: tuple[str, ...] = ()
    #: why the configured token could not be used (it is then None); never quotes it
    token_problems: tuple[str, ...] = ()
    #: where ``login`` writes the token: putio.token_file, else ``token`` in the config folder
    token_file: Path | None = None
    #: the client id of the OAuth app ``login`` asks put.io's device code for
    oauth_app_id: int | None = None
    mount: MountOptions = MountOptions()
    #: the owner, group and mode given to placed files and their folders (``files:``)
    ownership: Ownership = AS_IS
    #: where a run's events go: notifications, the on-item-placed hook, *arr rescans
    outlets: Outlets = field(default_factory=Outlets)
    #: folders given by path, still to be looked up (their ids are UNRESOLVED until then)
    folder_paths: FolderPaths = field(default_factory=FolderPaths)

    def __repr__(self) -> str:
        # The journal URL may carry a database password; the token is a Secret already.
        parts = (
            f"{item.name}={hide_url_password(getattr(self, item.name))!r}"
            if item.name == "journal_url"
            else f"{item.name}={getattr(self, item.name)!r}"
            for item in fields(self)
        )
        return f"Settings({', '.join(parts)})"


def hide_url_password(url: str) -> str:
    """Given a database URL, return it with any password replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def default_config_path() -> Path:
    """Return where the config file is looked for when none is named: ``mirror.yaml`` in
    the config folder (``$XDG_CONFIG_HOME/putio-mirror`` or ``~/.config/putio-mirror``)."""
    return config_folder() / "mirror.yaml"


def default_journal_url() -> str:
    """Return the SQLite URL of the journal when none is configured, in the state folder."""
    return f"sqlite:///{default_journal()}"


def load_settings(
    path: Path | None,
    env: Mapping[str, str],
    *,
    require_token: bool = True,
    overrides: Mapping[str, object] | None = None,
    check_paths: bool = False,
    token_optional: bool = False,
) -> Settings:
    """Given a config path (or None), the environment and CLI overrides, return ``Settings``.

    The file is ``path``, else ``$PUTIO_MIRROR_CONFIG``, else the default
    path if it exists, else none (built-in defaults). ``overrides`` maps
    dotted keys (``download.chunk_size_kb``) to values laid over the file.
    ``check_paths`` also reports folders and files a writing run could not
    create or write. ``token_optional``: a token that cannot be read is no error (``login``
    is about to write it; ``doctor`` tells ``Settings.token_problems``). Raise ConfigError
    listing every problem found, or if ``require_token`` and no token is set.
    """
    config_path = _find_config(path, env)
    raw = read_yaml(config_path) if config_path else {}
    source = config_path.name if config_path else "defaults"
    raw = apply_overrides(raw, overrides or {})
    model = validate(raw, source, set(overrides or {}), config_path)
    settings, problems = _build(model, env, config_path, source)
    if not token_optional:
        problems = settings.token_problems + problems
    problems += staging_problems(settings.staging_dir, settings.download_dir, source)
    problems += ownership_problems(model.files, source, may_give=check_paths)
    if check_paths:
        problems += _path_problems(settings, source)
    if problems:
        raise config_error(config_path, problems)
    if require_token and settings.token is None:
        where = f" ({config_path})" if config_path else ""
        raise ConfigError(f"no put.io token is configured{where}", TOKEN_HINT)
    return settings


def config_file_path(path: Path | None, env: Mapping[str, str]) -> Path:
    """Given ``--config`` (or None) and the environment, return the config file a run reads
    (``--config``, then ``$PUTIO_MIRROR_CONFIG``, then the default), whether or not it exists."""
    explicit = path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    return default_config_path() if explicit is None else expand(str(explicit), env)


def _find_config(path: Path | None, env: Mapping[str, str]) -> Path | None:
    found = config_file_path(path, env)
    if path is None and not env.get(CONFIG_ENV):
        return found if found.exists() else None
    if not found.exists():
        how = "--config" if path else CONFIG_ENV
        raise ConfigError(
            f"config file {found} does not exist (named by {how})",
            f"check the path, or write the documented example there with "
            f"`putio-mirror config init --path {found}` and edit it",
        )
    return found


def _build(
    model: MirrorFile, env: Mapping[str, str], config_path: Path | None, source: str
) -> tuple[Settings, tuple[str, ...]]:
    """Given a valid file model, return the Settings and the problems found beyond the
    token (those it has are in ``Settings.token_problems``)."""
    token, token_problems = resolve_token(model.putio, env, source)
    rpc, rpc_problems = rpc_settings(model.rpc)
    paths = model.paths
    download_dir = expand(paths.downloads, env)
    settings = Settings(
        token=token,
        api_url=model.putio.api_url,
        upload_url=model.putio.upload_url,
        timeout=model.putio.timeout_seconds,
        blackhole_dir=expand(paths.blackhole, env),
        download_dir=download_dir,
        staging_dir=expand(paths.staging, env)
        if paths.staging
        else download_dir / STAGING_DIR_NAME,
        journal_url=_journal_url(paths.journal, env),
        log_file=expand(paths.log_file, env) if paths.log_file else None,
        log_level=model.log_level,
        chunk_size=model.download.chunk_size_kb * 1024,
        read_timeout=model.download.read_timeout_seconds,
        max_outage=model.download.max_outage_seconds,
        connections=model.download.connections,
        parallel_files=_number_or_auto(model.download.parallel_files),
        bwlimit=model.download.bwlimit,
        free_space_margin=model.download.free_space_margin_mb * MIB,
        schedule=parse_schedule(model.schedule.windows),
        groom_outside_window=model.schedule.groom_outside_window,
        watch_interval_minutes=model.schedule.watch_interval_minutes,
        save_parent_id=folder_id(model.transfers.save_parent_id),
        policy=_policy(model),
        rpc=rpc,
        config_path=config_path,
        warnings=permission_warnings(model.putio, env, config_path),
        token_problems=token_problems,
        token_file=token_file(model.putio, env),
        oauth_app_id=model.putio.oauth_app_id,
        mount=_mount(model.mount),
        ownership=ownership_of(model.files),
        outlets=outlets(model),
        folder_paths=FolderPaths(
            folder_path(model.download.remote_root), folder_path(model.transfers.save_parent_id)
        ),
    )
    problems = _unset_variables(model, env) + tuple(rpc_problems)
    return settings, tuple(f"{source}: {problem}" for problem in problems)


def _unset_variables(model: MirrorFile, env: Mapping[str, str]) -> tuple[str, ...]:
    """Given the file's model, return a problem for each path that uses a variable the
    environment does not set."""
    paths = model.paths
    written = {
        "putio.token_file": model.putio.token_file,
        "paths.blackhole": paths.blackhole,
        "paths.downloads": paths.downloads,
        "paths.staging": paths.staging,
        "paths.journal": _journal_path(paths.journal) if paths.journal else None,
        "paths.log_file": paths.log_file,
    }
    return tuple(
        f"{key}: {problem}"
        for key, text in written.items()
        if text and (problem := unset_problem(text, env))
    )


def _mount(section: MountSection) -> MountOptions:
    return MountOptions(
        refresh_seconds=section.refresh_seconds,
        cache_max_bytes=section.cache_max_mb * MIB,
        read_ahead_max_bytes=section.read_ahead_max_mb * MIB,
        connections=section.connections,
        read_timeout=section.read_timeout_seconds,
        max_outage=section.max_outage_seconds,
        allow_other=section.allow_other,
    )


def _policy(model: MirrorFile) -> Policy:
    transfers, download, safety = model.transfers, model.download, model.safety
    return Policy(
        submit_blackhole=transfers.submit_blackhole,
        cancel_seeding=transfers.cancel_seeding,
        seeding_min_hours=transfers.seeding_min_hours,
        seeding_min_ratio=transfers.seeding_min_ratio,
        clean_finished=transfers.clean_finished,
        download=download.enabled,
        delete_remote_after_download=download.delete_remote_after,
        delete_remote_on_rpc_remove=model.rpc.delete_remote_on_remove,
        manage_foreign_transfers=transfers.manage_foreign,
        remote_root_id=folder_id(download.remote_root) or 0,
        item_placement=download.placement == "item",
        filters=Filters(
            include=download.include,
            exclude=download.exclude,
            min_size=int(download.min_size_mb * MIB),
            skip_extras=download.skip_extras,
        ),
        limits=SafetyLimits(
            max_cancels=safety.max_cancels,
            max_cleans=safety.max_cleans,
            max_remote_deletes=safety.max_remote_deletes,
            vanished_threshold=safety.vanished_threshold,
        ),
    )


def _journal_url(value: str | None, env: Mapping[str, str]) -> str:
    """Given ``paths.journal``, return an SQLAlchemy URL; a plain path becomes SQLite."""
    if not value:
        return default_journal_url()
    path = _journal_path(value)
    if path is None:
        return value  # a URL, which may hold a password with '$' in it: left untouched
    return f"sqlite:///{expand(path, env)}"


def _journal_path(value: str) -> str | None:
    """Given ``paths.journal``, return the path in it to expand (None: a URL as written)."""
    if value.startswith("sqlite:///"):
        rest = value.removeprefix("sqlite:///")
        return rest if rest.startswith(("~", "$")) else None
    return None if _URL_SCHEME.match(value) else value


def _path_problems(settings: Settings, source: str) -> tuple[str, ...]:
    """Given Settings, return problems with the folders and files a writing run needs."""
    wanted: list[tuple[str, Path | None, bool]] = [
        ("paths.blackhole", settings.blackhole_dir, True),
        ("paths.downloads", settings.download_dir, True),
        ("paths.staging", settings.staging_dir, True),
        ("paths.log_file", settings.log_file, False),
    ]
    problems = [
        f"{source}: {key}: {reason}"
        for key, path, is_folder in wanted
        if path is not None and (reason := unwritable_reason(path, is_folder))
    ]
    journal = sqlite_file(settings.journal_url)
    if journal is not None and (reason := journal_unwritable_reason(journal)):
        problems.append(f"{source}: paths.journal: {reason}")
    return tuple(problems)


def _number_or_auto(value: int | str) -> int | None:
    return None if value == "auto" else int(value)
