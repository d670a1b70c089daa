"""contrib/: the units, plists and cron file are well formed and call real invocations."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from putio_mirror.cli.main import main
from putio_mirror.core.errors import ExitCode
from putio_mirror.core.window import parse_window

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
UNITS = sorted((CONTRIB / "systemd").glob("*.service")) + sorted(
    (CONTRIB / "systemd").glob("*.timer")
)
PLISTS = sorted((CONTRIB / "launchd").glob("*.plist"))


def accepts(argv: list[str]) -> bool:
    """The CLI knows this command path and its options (help is printed, nothing runs)."""
    return main([*argv, "--help"]) == 0


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def command_of(exec_start: str) -> list[str]:
    words = shlex.split(exec_start)
    assert words[0].endswith("/putio-mirror")
    return words[1:]


@pytest.mark.parametrize("path", [p for p in UNITS if p.suffix == ".service"], ids=lambda p: p.name)
def test_service_units_run_real_commands(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit = read_unit(path)
    assert unit.has_section("Unit") and unit.has_section("Service")
    assert accepts(command_of(unit["Service"]["ExecStart"]))
    capsys.readouterr()


def test_oneshot_sync_counts_window_closed_and_needs_you_as_success_and_timer_persists() -> None:
    service = read_unit(CONTRIB / "systemd" / "putio-mirror.service")["Service"]
    assert service["Type"] == "oneshot"
    successes = service["SuccessExitStatus"].split()
    assert str(int(ExitCode.WINDOW_CLOSED)) in successes
    assert str(int(ExitCode.NEEDS_ATTENTION)) in successes
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    timer = read_unit(CONTRIB / "systemd" / "putio-mirror.timer")["Timer"]
    assert timer["Persistent"] == "true"
    assert timer["Unit"] == "putio-mirror.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists the binary exists: point the copies at this environment's entry point.
    binary = Path(sys.executable).parent / "putio-mirror"
    if not binary.exists():
        pytest.skip("the putio-mirror entry point is not installed in this environment")
    for path in UNITS:
        text = path.read_text().replace("/usr/local/bin/putio-mirror", str(binary))
        (tmp_path / path.name).write_text(text)
    names = [str(tmp_path / path.name) for path in UNITS]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", PLISTS, ids=lambda p: p.name)
def test_launchd_plists_parse_and_run_real_commands(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with path.open("rb") as handle:
        agent = plistlib.load(handle)
    assert agent["Label"].startswith("io.putio-mirror.")
    program, *arguments = agent["ProgramArguments"]
    assert program.endswith("/putio-mirror") and accepts(arguments)
    assert "StartCalendarInterval" in agent or agent.get("KeepAlive") is True
    capsys.readouterr()


def test_the_serve_agents_run_serve_kept_alive() -> None:
    service = read_unit(CONTRIB / "systemd" / "putio-mirror-serve.service")["Service"]
    assert command_of(service["ExecStart"]) == [
        "--config",
        "/etc/putio-mirror/mirror.yaml",
        "serve",
    ]
    assert service["Type"] == "simple"
    for long_running in ("serve", "watch"):  # weeks of threads: glibc's arenas kept few
        unit = read_unit(CONTRIB / "systemd" / f"putio-mirror-{long_running}.service")
        assert unit["Service"]["Environment"] == "MALLOC_ARENA_MAX=2"
    with (CONTRIB / "launchd" / "io.putio-mirror.serve.plist").open("rb") as handle:
        agent = plistlib.load(handle)
    assert agent["ProgramArguments"][1:] == ["serve"] and agent["KeepAlive"] is True


def test_cron_lines_are_valid_and_run_real_commands(capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        line
        for line in (CONTRIB / "cron" / "putio-mirror").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert lines
    for line in lines:
        fields = line.split(None, 6)
        assert len(fields) == 7, "cron.d lines have five time fields, a user, and a command"
        words = shlex.split(fields[6].split(">>")[0])
        assert words[0] == "putio-mirror" and accepts(words[1:])
        assert words[1:3] == ["--config", "/etc/putio-mirror/mirror.yaml"], "the units' config"
        if "--window" in words:
            parse_window(words[words.index("--window") + 1])
    capsys.readouterr()


def test_mount_unit_serves_in_the_foreground_in_the_hosts_mount_namespace() -> None:
    service = read_unit(CONTRIB / "systemd" / "putio-mirror-mount.service")["Service"]
    assert service["Type"] == "simple"
    words = command_of(service["ExecStart"])
    assert words[:3] == ["--config", "/etc/putio-mirror/mirror.yaml", "mount"]
    assert "--foreground" in words
    # Each of these would hide the mount from every other process, or stop fusermount3.
    for option in (
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ReadWritePaths",
        "NoNewPrivileges",
    ):
        assert option not in service, option
    assert service["ExecStopPost"].endswith(f"-u -z {words[-1]}")
