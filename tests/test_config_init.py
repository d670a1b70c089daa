"""`putio-mirror config init`: the documented example, shipped in the wheel (with the manual
page), written where a run will read it."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from putio_mirror.cli.main import main
from putio_mirror.config.example import example_text
from putio_mirror.config.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "mirror.example.yaml"
SHIPPED = "putio_mirror/config/mirror.example.yaml"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PUTIO_MIRROR_CONFIG", raising=False)
    return tmp_path


def test_the_package_ships_the_top_level_example() -> None:
    assert example_text() == EXAMPLE.read_text(encoding="utf-8")


def test_init_writes_the_example_to_the_default_path_readable_only_by_its_owner(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "init"]) == 0
    written = home / "config" / "putio-mirror" / "mirror.yaml"
    assert str(written) in capsys.readouterr().out
    assert written.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    # The file a run reads when none is named, and it says what the defaults are.
    found = load_settings(None, {"HOME": str(home)}, require_token=False)
    assert found.config_path == written


def test_init_never_overwrites_without_force(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = home / "mine.yaml"
    target.write_text("log_level: DEBUG\n")
    assert main(["config", "init", "--path", str(target)]) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "log_level: DEBUG\n"
    assert [p.name for p in home.iterdir() if p.name.startswith(".mine")] == []
    assert main(["config", "init", "--path", str(target), "--force"]) == 0
    assert target.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_init_writes_where_config_or_the_environment_points(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--config", str(home / "a" / "one.yaml"), "config", "init"]) == 0
    monkeypatch.setenv("PUTIO_MIRROR_CONFIG", "$HOME/b/two.yaml")
    assert main(["config", "init"]) == 0
    assert (home / "a" / "one.yaml").is_file() and (home / "b" / "two.yaml").is_file()


def test_a_missing_config_file_hints_at_the_command_that_writes_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = home / "etc" / "mirror.yaml"
    assert main(["--config", str(missing), "doctor"]) == 2
    hint = next(line for line in capsys.readouterr().err.splitlines() if "Hint" in line)
    command = hint.split("`")[1]
    assert command == f"putio-mirror config init --path {missing}"
    assert main(command.split()[1:]) == 0
    assert load_settings(missing, {"HOME": str(home)}, require_token=False).config_path == missing


@pytest.mark.slow
def test_the_wheel_holds_the_example_and_the_manual_page(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*_cache", "build", "*.egg-info", "bench", "tests"
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("putio_mirror-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(SHIPPED).decode("utf-8") == EXAMPLE.read_text(encoding="utf-8")
        (page,) = [n for n in archive.namelist() if n.endswith("/share/man/man1/putio-mirror.1")]
        assert archive.read(page) == (ROOT / "docs" / "putio-mirror.1").read_bytes()


def test_init_where_a_file_stands_for_a_folder_is_a_config_error_not_a_crash(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))  # where a crash report goes
    (home / "etc").write_text("a file, not a folder\n")
    assert main(["config", "init", "--path", str(home / "etc" / "mirror.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {home / 'etc' / 'mirror.yaml'}" in err and "hit a bug" not in err
    assert not (home / "state").exists()
