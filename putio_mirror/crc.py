"""CRC32 arithmetic: combine the CRCs of two adjacent byte ranges without the bytes.

zlib has ``crc32_combine`` in C but Python's zlib module does not expose it;
this is the same GF(2) matrix method (Mark Adler's), O(log n) per combine.
It lets a download fetched in segments be verified from the segments' own
running CRCs instead of reading the whole file back. Pure.
"""

from __future__ import annotations

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


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """Given crc32(A), crc32(B) and len(B), return crc32(A + B)."""
    if second_length <= 0:
        return first
    odd = [_POLYNOMIAL] + [1 << row for row in range(31)]  # one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    length = second_length
    while True:
        even = _square(odd)
        if length & 1:
            first = _times(even, first)
        length >>= 1
        if not length:
            break
        odd = _square(even)
        if length & 1:
            first = _times(odd, first)
        length >>= 1
        if not length:
            break
    return first ^ second
