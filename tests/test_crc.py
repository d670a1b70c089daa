"""crc32 and crc32_combine agree with the stdlib zlib on the joined bytes, in both the
fast (zlib-ng) and the fallback (pure Python) combine."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from putio_mirror.fetch.crc import crc32, crc32_combine, python_crc32_combine

COMBINES = pytest.mark.parametrize(
    "combine", [crc32_combine, python_crc32_combine], ids=["in-use", "python"]
)


@COMBINES
@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combined_crc_of_two_parts_equals_the_crc_of_the_whole(
    combine: Callable[[int, int, int], int], first: bytes, second: bytes
) -> None:
    combined = combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


@COMBINES
def test_combine_works_for_gigabyte_lengths_without_the_bytes(
    combine: Callable[[int, int, int], int],
) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    whole = zlib.crc32(block * 3)
    head = zlib.crc32(block)
    tail = zlib.crc32(block * 2)
    assert combine(head, tail, len(block) * 2) == whole


@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=2**32 - 1))
def test_running_crc32_matches_the_stdlib(data: bytes, start: int) -> None:
    assert crc32(data, start) == zlib.crc32(data, start)
    assert crc32(memoryview(data)) == zlib.crc32(data)
