"""The README's opening stays the two commands that work on a fresh machine, and every block
it marks ```` ```sh runnable ```` runs, offline, in a fresh home folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import putio_mirror

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\S*)[ \t]*(.*?)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str, str]]:
    """Every fenced block: (language, the rest of the info string, its text)."""
    return FENCE.findall(README.read_text(encoding="utf-8"))


def commands(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.strip()]


RUNNABLE = [text for _, info, text in blocks() if info.split() == ["runnable"]]


def test_the_readme_opens_with_the_two_commands_that_need_only_python_and_make() -> None:
    language, _, text = blocks()[0]
    assert language == "sh" and commands(text) == ["make demo", "make test"]


def test_some_blocks_are_marked_runnable() -> None:
    assert len(RUNNABLE) >= 2
    assert any("putio-mirror demo" in text for text in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda text: commands(text)[0][:40])
def test_a_runnable_block_runs_in_a_fresh_home(block: str, tmp_path: Path) -> None:
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    program = bin_dir / "putio-mirror"
    package_root = Path(putio_mirror.__file__).resolve().parent.parent
    program.write_text(
        f'#!/bin/sh\nPYTHONPATH="{package_root}" exec "{sys.executable}" -m putio_mirror "$@"\n'
    )
    program.chmod(0o755)
    kept = {"LANG", "LC_ALL", "TZ"}
    env = {key: value for key, value in os.environ.items() if key in kept}
    env |= {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-euo", "pipefail", "-c", block],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_exit_code_table_lists_every_exit_code_and_no_other() -> None:
    from putio_mirror.core.errors import ExitCode

    section = README.read_text(encoding="utf-8").split("## Exit codes", 1)[1].split("\n## ")[0]
    listed = [int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)]
    assert listed == sorted(int(code) for code in ExitCode)
