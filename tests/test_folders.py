"""This tool's own folders, through platformdirs: today's Linux paths, $XDG_* honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from putio_mirror.local.folders import config_folder, lock_folder, state_folder


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(variable, raising=False)


def test_linux_defaults_are_under_home() -> None:
    assert config_folder() == Path("/home/u/.config/putio-mirror")
    assert state_folder() == Path("/home/u/.local/state/putio-mirror")
    assert lock_folder() == Path("/home/u/.local/state/putio-mirror")


def test_absolute_xdg_variables_move_the_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    assert config_folder() == tmp_path / "c" / "putio-mirror"
    assert state_folder() == tmp_path / "s" / "putio-mirror"
    assert lock_folder() == tmp_path / "s" / "putio-mirror"
    # a login session's runtime folder changes nothing: a service's run has none
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert lock_folder() == tmp_path / "s" / "putio-mirror"


def test_relative_xdg_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(variable, "relative")
    assert config_folder() == Path("/home/u/.config/putio-mirror")
    assert lock_folder() == state_folder() == Path("/home/u/.local/state/putio-mirror")
