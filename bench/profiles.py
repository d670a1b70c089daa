"""Where a contender's CPU goes: its runs sampled by py-spy, the top functions printed.

``--profile FOLDER`` (``many_files.py``) runs putio-mirror under ``py-spy record`` (raw
collapsed stacks, every thread, idle samples left out), one file a run in FOLDER, and
prints the functions most samples were in (``self``: at the top of the stack; ``total``:
anywhere in it), summed over the runs. py-spy samples from outside the process, yet its
own CPU counts in the run's (it is the run's parent): a profiled run's figures are for
reading where the time goes, not for the goals.

py-spy is no dependency of the product: ``pip install py-spy`` into the environment
the benchmark runs in (or put it on PATH).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from common import BenchError, print_table

#: samples a second: enough for a run of a few seconds, little enough not to slow it much
RATE = 250
#: "function (path/to/file.py:123)" → the function and the file's last two parts
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")


def py_spy() -> str:
    """Return py-spy's path (next to this interpreter, else on PATH); raise BenchError if
    it is not installed."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    return found


def recording(out: Path) -> list[str]:
    """The command prefix that samples a command into ``out`` (raw collapsed stacks)."""
    options = ["--format", "raw", "--rate", str(RATE), "--threads", "--nonblocking", "--gil"]
    return [py_spy(), "record", *options, "--output", str(out), "--"]


def frame_name(frame: str) -> str:
    """Given a py-spy frame, return it as "function (folder/file.py)"."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    where = "/".join(Path(match["path"]).parts[-2:])
    return f"{match['name']} ({where})"


def tally(lines: Iterable[str]) -> tuple[Counter[str], Counter[str], int]:
    """Given raw collapsed stacks ("frame;frame;... count"), return the samples a
    function was at the top of (self), anywhere in (total), and all samples."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # the first frame is the thread's name ("thread (0x7f..)"), not a function
        frames = [frame_name(frame) for frame in stack.split(";")[1:]]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    return own, anywhere, samples


def print_top(title: str, files: Sequence[Path], top: int = 20) -> None:
    """Print the ``top`` functions by self and by total samples over ``files``."""
    lines = [line for path in files if path.exists() for line in path.read_text().splitlines()]
    own, anywhere, samples = tally(lines)
    if not samples:
        print(f"\n{title}: no samples")
        return
    for kind, counter in (("self", own), ("total", anywhere)):
        rows = [
            [f"{count / samples:.1%}", str(count), name] for name, count in counter.most_common(top)
        ]
        print_table(
            f"{title}: top {top} by {kind} ({samples} samples)", ["share", kind, "function"], rows
        )
