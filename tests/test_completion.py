"""`putio-mirror completion SHELL`: click's script, asked for completions by a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import putio_mirror
from putio_mirror.cli.main import main

PACKAGE_ROOT = Path(putio_mirror.__file__).resolve().parent.parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_script_is_printed_for_each_shell(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "_PUTIO_MIRROR_COMPLETE" in script and "putio-mirror" in script


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh"]) == 2
    assert "tcsh" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_completes_commands_and_subcommands_through_the_script(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "putio-mirror"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m putio_mirror "$@"\n')
    program.chmod(0o755)
    probe = (
        "source <(putio-mirror completion bash)\n"
        "complete -p putio-mirror\n"
        'ask() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();\n'
        '  _putio_mirror_completion putio-mirror; echo "${COMPREPLY[*]}"; }\n'
        "ask putio-mirror con\n"
        "ask putio-mirror config ''\n"
        "ask putio-mirror completion ''\n"
    )
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PACKAGE_ROOT),
    }
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    registered, *answers = done.stdout.splitlines()
    assert registered.endswith(" putio-mirror") and "_putio_mirror_completion" in registered
    assert answers == ["config", "init", "bash zsh fish"]
