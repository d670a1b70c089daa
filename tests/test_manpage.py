"""docs/putio-mirror.1 is what scripts/manpage.py makes of the CLI now, and renders cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from putio_mirror.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "putio-mirror.1"


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[str]:
    context = click.Context(group)
    found: list[str] = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found += leaf_commands(command, (*path, name))
        elif command is not None:
            found.append(" ".join((*path, name)))
    return found


def test_the_page_is_up_to_date_with_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "manpage.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_command_and_exit_code_has_its_place() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for words in leaf_commands(cli):
        assert f'.SS "{words.replace("-", chr(92) + "-")}"' in page, words
    for code in ("0", "2", "10", "130"):
        assert f".TP\n.B {code}\n" in page


@pytest.mark.skipif(shutil.which("groff") is None, reason="no groff here")
def test_groff_renders_it_without_a_warning() -> None:
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(PAGE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
