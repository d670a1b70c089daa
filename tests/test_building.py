"""fast_constructor: frozen values built fast are the very values their class makes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from putio_mirror.core.building import fast_constructor
from putio_mirror.core.plan import Download
from putio_mirror.core.state import DownloadRecord, RemoteFile

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (RemoteFile, (7, "e01.mkv", 3, 1000, False, "0badf00d", "REGULAR", WHEN)),
        (
            DownloadRecord,
            (
                7,
                "Show/e01.mkv",
                1000,
                None,
                1000,
                WHEN,
                "Show/e01.mkv",
                WHEN,
                2,
                None,
                "gone",
                12,
                -34,
            ),
        ),
    ],
)
def test_built_values_are_the_class_own(cls: type[object], values: tuple[object, ...]) -> None:
    built, made = fast_constructor(cls)(*values), cls(*values)
    assert type(built) is cls
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert dataclasses.astuple(built) == values  # type: ignore[call-overload]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, dataclasses.fields(cls)[1].name, "other")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast_constructor(cls)(*values[:2])  # the fields without defaults are needed


def test_defaults_and_keywords_are_taken_as_the_class_takes_them() -> None:
    download = fast_constructor(Download)
    assert download(7, "a.mkv", 10, None) == Download(7, "a.mkv", 10, None)
    assert download(7, "a.mkv", 10, None, 5, staged=True) == Download(
        7, "a.mkv", 10, None, 5, staged=True
    )
    assert download(7, "a.mkv", 10, None).key == "download:7"  # its class's own properties


@dataclasses.dataclass(frozen=True)
class _Unslotted:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a name")


@dataclasses.dataclass(frozen=True, slots=True)
class _Listed:
    names: list[str] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize("cls", [_Unslotted, _Checked, _Listed, dict])
def test_a_class_whose_instances_could_not_be_built_so_is_refused(cls: type[object]) -> None:
    with pytest.raises(TypeError):
        fast_constructor(cls)
