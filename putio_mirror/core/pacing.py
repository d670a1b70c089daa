"""How many files to download at once when the config leaves it to us (``parallel_files: auto``).

Small files cost round trips, not bandwidth: an API call for the link, a node's first byte,
a sync and a rename each; many at once hide that latency (aria2c's ``-j8`` does the same).
Large files already spread over ``download.connections`` Range connections each, so a few
at once fill the line without a crowd of connections to one node.

The sizes give the most at once (``files_at_once``); how far put.io is decides how many of
those a run uses (``Crowd``). Close by (a LAN, a local imitation), files hardly wait for
their first byte, and each file more at once only hands the interpreter lock and the
staging folder's lock around: 1,000 files of 1 MiB took 3.45 ms of CPU a file twelve at
once, 2.62 two at once, in less wall time (bench/many_files.py, issue 14). Far away (put.io
is ~100 ms from most homes), every file waits, and twelve at once are what hide it.
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


#: files at once an ``auto`` run starts with: one's disk work overlaps the other's request
AUTO_FEWEST_FILES = 2
#: a generation whose files spent at least this share of their time waiting for answers to
#: begin (put.io's distance) doubles the files at once: more of them hide the wait
GROW_AT = 0.5
#: ... and one that waited less than this share takes one file less at once (not below the
#: fewest): the wait is not what holds the files up
SHRINK_AT = 0.15


class Crowd:
    """How many files download at once: between ``fewest`` and ``most``, grown while files
    wait for put.io's answers most of their time, shrunk while they hardly wait.

    Decided once a generation: once as many files ended as were allowed at once when it
    began, so that each decision sees files that ran under the one before. ``fewest`` ==
    ``most`` (the config's number) never changes."""

    __slots__ = ("_ended", "_took", "_waited", "allowed", "fewest", "most")

    def __init__(self, most: int, fewest: int = AUTO_FEWEST_FILES) -> None:
        self.most = max(1, most)
        self.fewest = max(1, min(fewest, self.most))
        self.allowed = self.fewest
        self._ended, self._waited, self._took = 0, 0.0, 0.0

    def ended(self, waited: float, took: float) -> None:
        """Given a file that ended: the seconds it waited for answers to begin, and all it
        took; decide on the files at once if its generation is over."""
        self._ended += 1
        self._waited += waited
        self._took += took
        if self._ended < self.allowed:
            return
        share = self._waited / self._took if self._took > 0 else 0.0
        if share >= GROW_AT:
            self.allowed = min(self.most, 2 * self.allowed)
        elif share < SHRINK_AT:
            self.allowed = max(self.fewest, self.allowed - 1)
        self._ended, self._waited, self._took = 0, 0.0, 0.0
