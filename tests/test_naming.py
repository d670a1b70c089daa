"""Tests of putio_mirror.core.naming: hostile put.io names become safe, distinct, stable paths."""

from __future__ import annotations

import posixpath
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from putio_mirror.core.naming import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    STAGING_DIR_NAME,
    _made_safe,
    is_plain,
    local_paths,
    room_beneath,
    safe_component,
    sibling_names,
)
from putio_mirror.core.state import RemoteFile

ROOT = "/srv/downloads"


def file(id_: int, name: str, parent: int = 0) -> RemoteFile:
    return RemoteFile(id=id_, name=name, parent_id=parent, size=1, is_folder=False)


def folder(id_: int, name: str, parent: int = 0, folder_type: str = "REGULAR") -> RemoteFile:
    return RemoteFile(
        id=id_, name=name, parent_id=parent, size=0, is_folder=True, folder_type=folder_type
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Movie (2020).mkv", "Movie (2020).mkv"),
        ("..", "_"),
        (".", "_"),
        ("", "_"),
        ("...", "_"),
        ("a\\b", "a_b"),
        ("C:", "C_"),
        ('what?*"<>|.txt', "what______.txt"),
        ("con.txt", "con_.txt"),
        ("CON", "CON_"),
        ("Aux.tar.gz", "Aux_.tar.gz"),
        ("com1", "com1_"),
        ("lpt9.log", "lpt9_.log"),
        ("console.txt", "console.txt"),
        ("-rf", "_-rf"),
        ("--help.txt", "_--help.txt"),
        ("\x00", "_"),
        ("line\nbreak", "line_break"),
        ("del\x7f", "del_"),
        ("c1\x85control", "c1_control"),
        ("trailing dots...", "trailing dots"),
        ("trailing spaces   ", "trailing spaces"),
        ("mixed. . .", "mixed"),
        ("ﬁle.txt", "ﬁle.txt"),
        ("e\u0301", "\u00e9"),
        (STAGING_DIR_NAME, "_" + STAGING_DIR_NAME),
        (".PUTIO-MIRROR-staging", "_.PUTIO-MIRROR-staging"),
        (".putio-mirror.db", "_.putio-mirror.db"),
        (".hidden", ".hidden"),
    ],
)
def test_safe_component_turns_hostile_names_into_safe_ones(name: str, expected: str) -> None:
    assert safe_component(name) == expected


def test_safe_component_cuts_long_ascii_names_to_255_bytes_keeping_the_extension() -> None:
    result = safe_component("a" * 300 + ".mkv")

    assert len(result.encode()) == MAX_COMPONENT_BYTES
    assert result == "a" * 251 + ".mkv"


def test_safe_component_cuts_multibyte_names_without_splitting_a_character() -> None:
    result = safe_component("€" * 100 + ".srt")  # 300 bytes of stem

    assert len(result.encode()) <= MAX_COMPONENT_BYTES
    assert result.endswith(".srt")
    assert set(result.removesuffix(".srt")) == {"€"}
    assert len(result.removesuffix(".srt")) == (MAX_COMPONENT_BYTES - 4) // 3


def test_safe_component_cuts_a_long_name_without_extension_to_no_trailing_space() -> None:
    result = safe_component("x" * 254 + " " + "y" * 10)

    assert result == "x" * 254


def test_nfd_and_nfc_twins_become_the_same_safe_name() -> None:
    assert safe_component("Café.txt") == safe_component("Cafe\u0301.txt")


def test_siblings_that_collide_get_distinct_names_and_the_lowest_id_keeps_the_plain_one() -> None:
    files = [
        file(30, "Café.txt"),
        file(10, "Cafe\u0301.txt"),
        file(20, "CAFÉ.TXT"),
        folder(40, "Cafe\u0301.txt"),
    ]

    paths = local_paths(files, 0)

    assert paths == {
        10: "Café.txt",
        20: "CAFÉ (putio-20).TXT",
        30: "Café (putio-30).txt",
        40: "Café.txt (putio-40)",
    }


def test_exact_duplicates_in_one_folder_get_id_suffixes() -> None:
    files = [folder(1, "Show"), file(5, "ep.mkv", 1), file(3, "ep.mkv", 1), file(4, "ep.mkv", 1)]

    paths = local_paths(files, 0)

    assert paths[3] == "Show/ep.mkv"
    assert paths[4] == "Show/ep (putio-4).mkv"
    assert paths[5] == "Show/ep (putio-5).mkv"


def test_ligature_and_its_spelled_out_twin_do_not_collide() -> None:
    paths = local_paths([file(1, "ﬁle.txt"), file(2, "file.txt")], 0)

    assert paths == {1: "ﬁle.txt", 2: "file (putio-2).txt"}


def test_a_sibling_literally_named_like_a_variant_is_not_overwritten() -> None:
    files = [file(1, "a.txt"), file(2, "a.txt"), file(3, "a (putio-2).txt")]

    paths = local_paths(files, 0)

    assert paths[3] == "a (putio-2).txt"
    assert paths[2] == "a (putio-2-2).txt"
    assert paths[1] == "a.txt"


def test_a_variant_of_a_255_byte_name_still_fits_in_255_bytes() -> None:
    long = "é" * 200 + ".mkv"

    paths = local_paths([file(1, long), file(2, long)], 0)

    assert paths[1] != paths[2]
    assert len(paths[2].encode()) <= MAX_COMPONENT_BYTES
    assert paths[2].endswith(" (putio-2).mkv")


def test_top_level_names_that_are_reserved_are_renamed() -> None:
    files = [folder(7, ".Submitted"), folder(8, ".submitted", 7)]

    paths = local_paths(files, 0, reserved=frozenset({".submitted"}))

    assert paths == {7: ".Submitted (putio-7)", 8: ".Submitted (putio-7)/.submitted"}


def test_our_staging_folder_name_never_appears_at_top_level() -> None:
    paths = local_paths([folder(1, STAGING_DIR_NAME), file(2, ".putio-mirror-staging")], 0)

    assert STAGING_DIR_NAME.casefold() not in {p.casefold() for p in paths.values()}


def test_names_are_stable_whatever_the_order_of_the_listing() -> None:
    files = [
        folder(1, "TV"),
        folder(2, "tv"),
        file(3, "x.mkv", 1),
        file(4, "X.mkv", 1),
        file(5, "x.mkv", 2),
        file(6, "..", 2),
        file(7, ".", 2),
    ]
    expected = local_paths(files, 0)
    shuffler = random.Random(4)

    for _ in range(20):
        shuffled = files[:]
        shuffler.shuffle(shuffled)
        assert local_paths(shuffled, 0) == expected
    assert expected[6] == "tv (putio-2)/_"
    assert expected[7] == "tv (putio-2)/_ (putio-7)"


def test_items_in_shared_folders_are_left_out() -> None:
    files = [
        folder(1, "Items shared with you", folder_type="SHARED_ROOT"),
        folder(2, "Friend", 1, folder_type="SHARED_FRIEND"),
        file(3, "theirs.mkv", 2),
        file(4, "also-theirs.mkv", 1),
        folder(5, "Mine"),
        file(6, "mine.mkv", 5),
    ]

    assert local_paths(files, 0) == {5: "Mine", 6: "Mine/mine.mkv"}


def test_a_shared_folder_does_not_push_a_user_folder_off_its_name() -> None:
    files = [folder(1, "Movies", folder_type="SHARED_ROOT"), folder(2, "Movies")]

    assert local_paths(files, 0) == {2: "Movies"}


def test_paths_are_relative_to_the_mirrored_folder() -> None:
    files = [
        folder(1, "Downloads"),
        folder(2, "Show", 1),
        file(3, "ep.mkv", 2),
        file(4, "elsewhere.mkv"),
    ]

    assert local_paths(files, 1) == {2: "Show", 3: "Show/ep.mkv"}


def test_a_shared_folder_as_root_yields_nothing() -> None:
    files = [folder(1, "Shared", folder_type="SHARED_ROOT"), file(2, "a.mkv", 1)]

    assert local_paths(files, 1) == {}


def test_items_with_broken_or_cyclic_parent_chains_are_left_out() -> None:
    files = [
        file(1, "orphan.mkv", 99),
        folder(2, "loop-a", 3),
        folder(3, "loop-b", 2),
        file(4, "in-loop.mkv", 3),
        folder(5, "self", 5),
        file(6, "fine.mkv"),
        file(7, "child-of-a-file.txt", 6),
    ]

    assert local_paths(files, 0) == {6: "fine.mkv"}


def test_a_root_inside_a_cycle_does_not_include_itself() -> None:
    files = [folder(1, "a", 2), folder(2, "b", 1), file(3, "c.txt", 1)]

    assert local_paths(files, 1) == {2: "b", 3: "c.txt"}


def test_very_deep_trees_do_not_hit_the_recursion_limit() -> None:
    depth = 3000
    files = [folder(i, "d", i - 1) for i in range(1, depth + 1)]
    files.append(file(depth + 1, "bottom.mkv", depth))

    paths = local_paths(files, 0)

    assert paths[depth + 1].endswith("/bottom.mkv")
    assert len(paths[depth + 1]) <= MAX_PATH_BYTES


@pytest.mark.parametrize("prefix", [1, 400, 700, 1500, 3000])
def test_beneath_a_long_folder_every_path_fits_what_the_kernel_leaves(prefix: int) -> None:
    long = "界" * 80  # 240 bytes
    files = [folder(i, f"{long} {i}", i - 1) for i in range(1, 21)]
    files += [file(100, f"{long}.mkv", 20), file(101, "b.mkv", 1)]

    room = room_beneath(prefix)
    paths = local_paths(files, 0, room=room)

    assert room == min(MAX_PATH_BYTES, 4095 - prefix)
    assert all(prefix + len(path.encode()) < 4096 for path in paths.values())
    assert paths[101] == f"{long} 1/b.mkv"  # high up, nothing is cut
    assert {100, 101} <= set(paths)  # every file has a path
    if room == MAX_PATH_BYTES:  # a short folder's names are those ever given
        assert paths == local_paths(files, 0)


def test_a_path_never_grows_past_the_longest_path_the_files_laid_flat_beneath() -> None:
    long = "界" * 80  # 240 bytes
    files = [folder(i, f"{long} {i}", i - 1) for i in range(1, 31)]
    files += [file(100, "a.mkv", 30), file(101, "a.mkv", 20), file(102, "b.mkv", 1)]
    files.append(file(103, f"{long}.mkv", 14))

    paths = local_paths(files, 0)

    deep = [paths[100], paths[101], paths[103]]
    assert all(len(path.encode()) <= MAX_PATH_BYTES for path in paths.values())
    assert paths[102] == f"{long} 1/b.mkv"  # high up, nothing is cut
    assert len({posixpath.dirname(path) for path in deep[:2]}) == 1  # laid flat, one folder
    assert sorted(posixpath.basename(path) for path in deep[:2]) == [
        "a (putio-101).mkv",
        "a.mkv",
    ]
    assert paths[103].endswith(".mkv")  # cut to fit, its extension kept
    assert local_paths(list(reversed(files)), 0) == paths  # stable


def test_sibling_names_returns_items_in_id_order() -> None:
    names = sibling_names([file(2, "b"), file(1, "a")])

    assert [(item.id, name) for item, name in names] == [(1, "a"), (2, "b")]


# --- properties ---------------------------------------------------------------

HOSTILE = st.sampled_from(
    ["", ".", "..", "...", " ", "-", "CON", "nul.txt", "a\\b", "é", "e\u0301", "E\u0301",
     "ﬁ", "fi", "FI", STAGING_DIR_NAME, ".putio-mirror", "€" * 90, "x" * 260 + ".mkv"]
)  # fmt: skip
# ASCII names near the edges of the rules, the kind the quick check must judge right.
ASCII = st.one_of(
    st.text(st.characters(max_codepoint=127), max_size=20),
    st.text(" .-:con1lptCONUX$", max_size=9),
    st.builds(
        lambda stem, pad, tail: stem + " " * pad + tail,
        st.sampled_from(["con", "LPT1", "conout$", "Nul", "aux", "comx"]),
        st.integers(0, 6),
        st.sampled_from(["", ".txt", ". x", ".", " "]),
    ),
    st.text("ab", min_size=250, max_size=260),
)
NAMES = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
    st.text("aAé\u0301. -:", max_size=4),
    HOSTILE,
    ASCII,
)


@st.composite
def trees(draw: st.DrawFn) -> list[RemoteFile]:
    """A tree of up to 40 items with arbitrary names, some under broken parents."""
    count = draw(st.integers(0, 40))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    folders = [0]
    items = []
    for id_ in ids:
        parent = draw(st.sampled_from([*folders, 99_999]))
        is_folder = draw(st.booleans())
        name = draw(NAMES)
        items.append(folder(id_, name, parent) if is_folder else file(id_, name, parent))
        if is_folder:
            folders.append(id_)
    return draw(st.permutations(items))


def _key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


@settings(max_examples=300)
@given(trees())
def test_every_produced_path_stays_inside_the_root_and_is_distinct(
    items: list[RemoteFile],
) -> None:
    paths = local_paths(items, 0)

    for path in paths.values():
        joined = posixpath.normpath(posixpath.join(ROOT, path))
        assert joined == f"{ROOT}/{path}"
        assert joined.startswith(ROOT + "/")
        for component in path.split("/"):
            assert component not in ("", ".", "..")
            assert len(component.encode("utf-8")) <= MAX_COMPONENT_BYTES
            assert "\\" not in component
        assert len(path.encode("utf-8")) <= MAX_PATH_BYTES
    assert len({_key(p) for p in paths.values()}) == len(paths)
    assert STAGING_DIR_NAME.casefold() not in {_key(p) for p in paths.values()}


@settings(max_examples=500)
@given(NAMES)
def test_safe_component_is_idempotent_and_safe(name: str) -> None:
    safe = safe_component(name)

    assert safe_component(safe) == safe
    assert unicodedata.is_normalized("NFC", safe)
    assert len(safe.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert safe not in ("", ".", "..")
    assert not safe.endswith((" ", "."))
    assert not safe.startswith("-")


@settings(max_examples=1000)
@given(ASCII)
def test_a_name_kept_as_plain_is_one_that_every_rule_keeps_as_it_is(name: str) -> None:
    if is_plain(name):
        assert _made_safe(name) == name
    assert safe_component(name) == _made_safe(name)
