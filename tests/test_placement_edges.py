"""Odd trees and odd disks end to end, against the local put.io and real folders: a tree
deeper than the kernel's longest path, and a staging folder on another filesystem than
the download folder (rename(2) refuses with EXDEV there)."""

from __future__ import annotations

import os

from putio_mirror.core.errors import ExitCode
from tests.mirror_env import Mirror

#: the longest path the kernel takes, with its closing NUL (linux/limits.h)
PATH_MAX = 4096


def _deep_chain(mirror: Mirror, depth: int) -> tuple[int, int]:
    """Nest ``depth`` folders of 240-odd bytes of name each; return (top, deepest)."""
    top = parent = mirror.fake.add_folder("界" * 80 + " 0")
    for level in range(1, depth):
        parent = mirror.fake.add_folder("界" * 80 + f" {level}", parent)
    return top, parent


def test_a_tree_deeper_than_the_longest_path_is_placed_whole(mirror: Mirror) -> None:
    top, deepest = _deep_chain(mirror, 20)  # ~4,900 bytes of path
    mirror.fake.add_file("deep.mkv", deepest, content=b"deep")
    mirror.fake.add_file("shallow.mkv", top, content=b"shallow")
    result = mirror.run("sync")
    assert result.code == ExitCode.OK, result.out + result.err
    local = mirror.local_files()
    assert sorted(local.values()) == [b"deep", b"shallow"]
    for relative in local:
        assert len(os.fsencode(mirror.downloads / relative)) < PATH_MAX
    assert mirror.run("sync").out.startswith("Nothing to do")
