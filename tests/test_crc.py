"""crc32_combine agrees with zlib on the joined bytes."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from putio_mirror.crc import crc32_combine


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combined_crc_of_two_parts_equals_the_crc_of_the_whole(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_combine_works_for_gigabyte_lengths_without_the_bytes() -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    whole = zlib.crc32(block * 3)
    head = zlib.crc32(block)
    tail = zlib.crc32(block * 2)
    assert crc32_combine(head, tail, len(block) * 2) == whole
