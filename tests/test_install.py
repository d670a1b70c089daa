"""contrib/install.sh, the install recipe of contrib/README.md, run under a DESTDIR: the
config it writes, the folders, and units that run the program it found with that config."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import putio_mirror
from putio_mirror.config.settings import load_settings
from tests.test_contrib import read_unit

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
INSTALL = CONTRIB / "install.sh"
CONFIG = "/etc/putio-mirror/mirror.yaml"


def program(folder: Path) -> Path:
    """A ``putio-mirror`` command in ``folder`` that runs this checkout's package."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "putio-mirror"
    package_root = Path(putio_mirror.__file__).resolve().parent.parent
    path.write_text(
        f'#!/bin/sh\nPYTHONPATH="{package_root}" exec "{sys.executable}" -m putio_mirror "$@"\n'
    )
    path.chmod(0o755)
    return path


def install(destdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(INSTALL)],
        env=os.environ | {"DESTDIR": str(destdir)} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, Path]:
    binary = program(tmp_path / "opt" / "bin")
    destdir = tmp_path / "root"
    done = install(destdir, BIN=str(binary))
    assert done.returncode == 0, done.stderr
    assert f"--config {CONFIG} login" in done.stdout
    return destdir, binary


def test_the_config_has_absolute_paths_so_every_environment_reads_one_journal(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    destdir, _ = installed
    config = destdir / CONFIG.lstrip("/")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    # A unit (HOME the service's, no XDG) and a login shell (another HOME, XDG set).
    unit_env = {"HOME": "/var/lib/putio-mirror"}
    shell_env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    seen = [
        load_settings(config, env, require_token=False, token_optional=True)
        for env in (unit_env, shell_env)
    ]
    assert seen[0] == seen[1]
    settings = seen[0]
    assert settings.journal_url == "sqlite:////var/lib/putio-mirror/journal.sqlite3"
    assert settings.token_file == Path("/etc/putio-mirror/token")
    assert settings.blackhole_dir == Path("/srv/putio/blackhole")
    assert settings.download_dir == Path("/srv/putio/downloads")
    for folder in ("srv/putio/blackhole", "srv/putio/downloads", "var/lib/putio-mirror"):
        assert (destdir / folder).is_dir(), folder


def test_the_units_run_the_program_found_with_the_shared_config(
    installed: tuple[Path, Path],
) -> None:
    destdir, binary = installed
    units = sorted((destdir / "etc/systemd/system").iterdir())
    assert [unit.name for unit in units] == sorted(p.name for p in (CONTRIB / "systemd").iterdir())
    for unit in units:
        text = unit.read_text()
        assert "XDG_" not in text and "/usr/local/bin" not in text, unit.name
        if unit.suffix == ".service":
            words = read_unit(unit)["Service"]["ExecStart"].split()
            assert words[:3] == [str(binary), "--config", CONFIG], unit.name
    watch = read_unit(destdir / "etc/systemd/system/putio-mirror-watch.service")["Service"]
    assert watch["ExecReload"] == "/bin/kill -HUP $MAINPID"
    if shutil.which("systemd-analyze") is not None:
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *map(str, units)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_running_it_again_keeps_the_config_and_moves_the_folders_on_request(
    installed: tuple[Path, Path],
) -> None:
    destdir, binary = installed
    config = destdir / CONFIG.lstrip("/")
    edited = config.read_text().replace("log_level: INFO", "log_level: DEBUG")
    config.write_text(edited)
    done = install(destdir, BIN=str(binary), MEDIA_ROOT="/data/putio")
    assert done.returncode == 0, done.stderr
    assert config.read_text() == edited
    assert (destdir / "data/putio/downloads").is_dir()
    service = read_unit(destdir / "etc/systemd/system/putio-mirror.service")["Service"]
    assert service["ReadWritePaths"] == "/data/putio"


@pytest.mark.parametrize(
    ("binary", "complaint"),
    [
        ("", "not on PATH"),
        ("putio-mirror", "absolute path"),
        ("/nowhere/putio-mirror", "not an executable"),
    ],
)
def test_no_usable_program_is_refused_with_a_hint(
    tmp_path: Path, binary: str, complaint: str
) -> None:
    done = install(tmp_path / "root", BIN=binary, PATH="/usr/bin:/bin")
    assert done.returncode == 2 and complaint in done.stderr
    assert not (tmp_path / "root").exists()


def test_a_program_in_a_home_folder_is_refused_naming_the_system_wide_install(
    tmp_path: Path,
) -> None:
    # The units hide /home and /root (ProtectHome), and the service user may not enter them.
    fake_home = tmp_path / "home"
    binary = program(fake_home / ".local" / "bin")
    script = INSTALL.read_text().replace("/root/* | /home/*)", f"{fake_home}/*)")
    patched = tmp_path / "install.sh"
    patched.write_text(script)
    done = subprocess.run(
        ["sh", str(patched)],
        env=os.environ | {"DESTDIR": str(tmp_path / "root"), "BIN": str(binary)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install" in done.stderr


def test_every_contrib_path_the_units_and_readmes_name_exists() -> None:
    texts = [p.read_text() for p in CONTRIB.rglob("*") if p.is_file()]
    texts.append((ROOT / "README.md").read_text())
    named = {m for text in texts for m in re.findall(r"contrib/[\w./-]*[\w]", text)}
    assert "contrib/README.md" in named
    for path in sorted(named):
        assert (ROOT / path).exists(), path
