"""The shape of the config file, as pydantic models, and the Secret that wraps the token.

``settings.py`` reads the file and turns these models into ``Settings``; keeping
the schema apart keeps each module to one job. Every field here is documented
for users in ``mirror.example.yaml`` (a test keeps the two in step).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from putio_mirror.core.bandwidth import parse_timetable
from putio_mirror.core.window import parse_window


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _check_window(text: str) -> str:
    parse_window(text)  # raises ValueError with a readable reason
    return text


WindowText = Annotated[str, AfterValidator(_check_window)]


def _folder(value: object) -> int | str:
    """A put.io folder is its id (12) or its path from the account's root (/Movies)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.startswith("/"):
        return value
    raise ValueError(
        f"{value!r} is neither a folder id (e.g. 12) nor a path from the account's root "
        "(e.g. /Movies)"
    )


#: a put.io folder: its id, or its path from the account's root (``/`` is the root)
FolderRef = Annotated[int | str, PlainValidator(_folder)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PutioSection(_Section):
    token: str | None = None
    token_file: str | None = None
    oauth_app_id: PositiveInt | None = None
    api_url: str = "https://api.put.io/v2"
    upload_url: str = "https://upload.put.io/v2"
    timeout_seconds: PositiveFloat = 30.0

    @field_validator("api_url", "upload_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("should start with http:// or https://")
        return value.rstrip("/")


class PathsSection(_Section):
    blackhole: str = "~/putio/blackhole"
    downloads: str = "~/putio/downloads"
    staging: str | None = None
    journal: str | None = None
    log_file: str | None = None


class TransfersSection(_Section):
    submit_blackhole: bool = True
    save_parent_id: FolderRef | None = None
    cancel_seeding: bool = True
    seeding_min_hours: NonNegativeFloat = 0.0
    seeding_min_ratio: NonNegativeFloat | None = None
    clean_finished: bool = True
    manage_foreign: bool = False


class DownloadSection(_Section):
    enabled: bool = True
    remote_root: FolderRef = 0
    chunk_size_kb: PositiveInt = 256
    read_timeout_seconds: PositiveFloat = 60.0
    max_outage_seconds: NonNegativeFloat = 300.0
    delete_remote_after: bool = False
    connections: int = Field(default=4, ge=1, le=16)
    parallel_files: Annotated[int, Field(ge=1, le=16)] | Literal["auto"] = "auto"
    bwlimit: str = "off"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size_mb: NonNegativeFloat = 0.0
    skip_extras: bool = False
    placement: Literal["item", "file"] = "item"
    free_space_margin_mb: NonNegativeInt = 100

    @field_validator("bwlimit", mode="before")
    @classmethod
    def _a_number_is_a_rate(cls, value: object) -> object:
        # YAML reads `bwlimit: 10` as a number; it means 10 KiB/s, as in rclone
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return str(value) if number else value

    @field_validator("bwlimit")
    @classmethod
    def _is_timetable(cls, value: str) -> str:
        parse_timetable(value)  # raises ValueError with a readable reason
        return value

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _one_glob_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class ScheduleSection(_Section):
    windows: tuple[WindowText, ...] = ()
    groom_outside_window: bool = True
    watch_interval_minutes: PositiveFloat = 15.0

    @field_validator("windows", mode="before")
    @classmethod
    def _one_window_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class SafetySection(_Section):
    max_cancels: NonNegativeInt = 50
    max_cleans: NonNegativeInt = 200
    max_remote_deletes: NonNegativeInt = 20
    vanished_threshold: NonNegativeInt = 10


class MountSection(_Section):
    refresh_seconds: PositiveFloat = 300.0
    cache_max_mb: int = Field(default=256, ge=16)
    read_ahead_max_mb: int = Field(default=32, ge=1, le=1024)
    connections: int = Field(default=4, ge=1, le=16)
    read_timeout_seconds: PositiveFloat = 10.0
    max_outage_seconds: PositiveFloat = 30.0
    allow_other: bool = False


class RpcSection(_Section):
    listen: str = "127.0.0.1:9091"
    url_base: str = "/transmission"
    username: str | None = None
    password: str | None = None
    categories: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    poll_seconds: PositiveFloat = 30.0
    delete_remote_on_remove: bool = False

    @field_validator("url_base")
    @classmethod
    def _is_a_path(cls, value: str) -> str:
        if not value.startswith("/") or any(char in value for char in "?#% "):
            raise ValueError("should be a URL path such as /transmission")
        return value.rstrip("/")

    @field_validator("categories", "allowed_hosts", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class FilesSection(_Section):
    owner: str | NonNegativeInt | None = None
    group: str | NonNegativeInt | None = None
    mode: str | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _octal_text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads 0664 as the number 436 and 664 as six hundred sixty-four.
            raise ValueError('write the mode in quotes, e.g. "0664"')
        if isinstance(value, str) and not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError('should be octal permission bits such as "0664" or "0640"')
        return value


NotifyEvent = Literal["item_placed", "item_failed", "token_refused", "disk_full"]
_ALL_EVENTS: tuple[NotifyEvent, ...] = ("item_placed", "item_failed", "token_refused", "disk_full")


class NotifySection(_Section):
    urls: tuple[str, ...] = ()
    events: tuple[NotifyEvent, ...] = _ALL_EVENTS

    @field_validator("urls", "events", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _are_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if "://" not in url:  # never quoted: Apprise URLs hold tokens and passwords
                raise ValueError("each should be an Apprise URL such as ntfy://topic")
        return value


class HooksSection(_Section):
    on_item_placed: tuple[str, ...] = ()
    timeout_seconds: PositiveFloat = 300.0

    @field_validator("on_item_placed", mode="before")
    @classmethod
    def _is_argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "should be a list of arguments, such as [/usr/local/bin/on-placed, --quiet]: "
                "it is run without a shell; the item comes in PUTIO_MIRROR_ITEM_PATH"
            )
        return value


class ArrServerEntry(_Section):
    url: str
    api_key: str
    kind: Literal["sonarr", "radarr"]

    @field_validator("url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("should start with http:// or https://")
        return value


class MirrorFile(_Section):
    """The whole file, exactly as written; ``Settings`` is built from it."""

    putio: PutioSection = PutioSection()
    paths: PathsSection = PathsSection()
    transfers: TransfersSection = TransfersSection()
    download: DownloadSection = DownloadSection()
    schedule: ScheduleSection = ScheduleSection()
    safety: SafetySection = SafetySection()
    mount: MountSection = MountSection()
    rpc: RpcSection = RpcSection()
    files: FilesSection = FilesSection()
    notify: NotifySection = NotifySection()
    hooks: HooksSection = HooksSection()
    arr: tuple[ArrServerEntry, ...] = ()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
