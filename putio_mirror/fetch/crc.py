"""CRC32, as put.io lists it: of a byte range, and of two adjacent ranges combined.

Every downloaded byte goes through ``crc32``, so its speed bounds the engine's:
zlib-ng's (SIMD, carry-less multiply) runs at ~60 GB/s here against the stdlib
zlib's ~7 GB/s, a third of a CPU second per 2 GiB saved. Where no zlib-ng wheel
exists (the dependency is skipped on such machines) the stdlib zlib does the
same sums. ``crc32_combine`` lets a file fetched in segments be verified from the
segments' running CRCs without reading it back; the stdlib does not expose
zlib's, so ``python_crc32_combine`` is Mark Adler's GF(2) matrix method,
O(log n) per combine. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Crc32(Protocol):
    def __call__(self, data: bytes | bytearray | memoryview, value: int = 0, /) -> int: ...


_POLYNOMIAL = 0xEDB88320  # reflected CRC-32, as zlib.crc32


def _times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, matrix[row]) for row in range(32)]


def python_crc32_combine(first: int, second: int, second_length: int) -> int:
    """Given crc32(A), crc32(B) and len(B), return crc32(A + B)."""
    if second_length <= 0:
        return first
    one_zero_bit = [_POLYNOMIAL] + [1 << row for row in range(31)]
    zeros = _square(_square(_square(one_zero_bit)))  # feeds one zero byte, then 2, 4, 8 …
    length = second_length
    while True:
        if length & 1:
            first = _times(zeros, first)
        length >>= 1
        if not length:
            return first ^ second
        zeros = _square(zeros)


def _pick() -> tuple[_Crc32, Callable[[int, int, int], int]]:
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        import zlib

        return zlib.crc32, python_crc32_combine
    return zlib_ng.crc32, zlib_ng.crc32_combine


#: ``crc32(data, value=0)``: the running CRC32 of ``data`` after ``value``, as ``zlib.crc32``
crc32: _Crc32
#: ``crc32_combine(crc32(A), crc32(B), len(B))`` is ``crc32(A + B)``
crc32_combine: Callable[[int, int, int], int]
crc32, crc32_combine = _pick()
