"""Placing items on a filesystem that refuses hard links (vfat, exFAT, some NAS shares):
an item still appears whole or not at all, and a run that dies while building one neither
strands its files nor downloads them again. Real syncs against the local put.io; link(2)
is refused as such a filesystem refuses it."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from tests.mirror_env import Mirror


@pytest.fixture
def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)


@pytest.fixture
def season(mirror: Mirror) -> Iterator[tuple[int, int, int]]:
    show = mirror.fake.add_folder("Show S01")
    first = mirror.fake.add_file("e1.mkv", parent_id=show, size=300_000)
    second = mirror.fake.add_file("e2.mkv", parent_id=show, size=200_000)
    yield show, first, second


def _item_states(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record what the item folder holds after every rename the run makes (what a media
    manager scanning the download folder at that moment would find)."""
    seen: list[list[str]] = []
    real_rename = os.rename

    def rename(*args: object, **kwargs: object) -> None:
        real_rename(*args, **kwargs)  # type: ignore[arg-type]
        item = mirror.downloads / "Show S01"
        seen.append(sorted(p.name for p in item.iterdir()) if item.is_dir() else [])

    monkeypatch.setattr(os, "rename", rename)
    return seen


class _Died(BaseException):
    """The process dying at that point (nothing after it runs, no handler catches it)."""


@pytest.mark.usefixtures("no_hard_links")
def test_without_hard_links_an_item_still_appears_whole(
    mirror: Mirror, season: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    show, first, second = season  # noqa: RUF059
    seen = _item_states(mirror, monkeypatch)
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01/e1.mkv": mirror.fake.file_content(first),
        "Show S01/e2.mkv": mirror.fake.file_content(second),
    }
    assert ["e1.mkv"] not in seen and ["e2.mkv"] not in seen, seen


@pytest.mark.usefixtures("no_hard_links")
def test_without_hard_links_a_run_dying_mid_build_strands_nothing_and_fetches_nothing_again(
    mirror: Mirror, season: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    show, first, second = season  # noqa: RUF059
    real_rename = os.rename

    def dies_moving_the_item_in(source: object, target: object, *a: object, **k: object) -> None:
        if str(target) == str(mirror.downloads / "Show S01"):
            raise _Died
        real_rename(source, target, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", dies_moving_the_item_in)
    with pytest.raises(_Died):
        mirror.run("sync")
    assert not (mirror.downloads / "Show S01").exists()
    monkeypatch.setattr(os, "rename", real_rename)
    mirror.fake.clear_requests()
    assert mirror.run("sync").code == 0
    assert mirror.local_files() == {
        "Show S01/e1.mkv": mirror.fake.file_content(first),
        "Show S01/e2.mkv": mirror.fake.file_content(second),
    }
    assert [r.path for r in mirror.fake.requests if r.host == "node"] == []
    staging = mirror.downloads / ".putio-mirror-staging"
    assert [p for p in staging.rglob("*") if p.is_file()] == []
