"""How many files to download at once when the config leaves it to us (``parallel_files: auto``).

Small files cost round trips, not bandwidth: an API call for the link, a node's first byte,
a sync and a rename each; many at once hide that latency (aria2c's ``-j8`` does the same).
Large files already spread over ``download.connections`` Range connections each, so a few
at once fill the line without a crowd of connections to one node.
"""

from __future__ import annotations

from collections.abc import Sequence

MIB = 1024 * 1024

#: The most files ``auto`` downloads at once; the config's number may go to 16.
AUTO_MAX_FILES = 12

#: (median size below, files at once), the first match wins; larger files get 2. Files
#: under 2 MiB take less time to send than put.io takes to answer (~100 ms away): with 50 ms
#: of latency, 300 files of 1 MiB took 3.3 s twelve at once against 3.8 s eight at once
#: (bench/many_files.py), for the same CPU a file.
_STEPS = ((2 * MIB, AUTO_MAX_FILES), (8 * MIB, 8), (256 * MIB, 4))


def files_at_once(sizes: Sequence[int]) -> int:
    """Given the sizes of a run of consecutive downloads, return how many to fetch at once."""
    if len(sizes) < 2:
        return 1
    median = sorted(sizes)[len(sizes) // 2]
    wanted = next((count for limit, count in _STEPS if median < limit), 2)
    return min(wanted, len(sizes))
