"""``cli.entry``'s two start-up and exit tricks are in effect (see bench/startup.py --tricks
for what they buy): the raised cyclic GC threshold during the run, and the exit through
``os._exit`` that skips the interpreter's teardown, output still flushed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import putio_mirror
from putio_mirror.cli import main as cli

PROBE = """
import atexit, gc
import putio_mirror.cli.main as cli
atexit.register(lambda: print("teardown ran", flush=True))
def main(argv=None):
    print("threshold", gc.get_threshold()[0])  # left in the buffer: entry must flush it
    return 3
cli.main = main
cli.entry()
print("entry returned")
"""


def test_entry_raises_the_gc_threshold_then_exits_with_main_s_code_without_teardown() -> None:
    package_root = str(Path(putio_mirror.__file__).parent.parent)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env | {"PYTHONPATH": package_root},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["threshold", str(cli._GC_THRESHOLD)], (
        "the GC threshold is not raised during the run, or the output was lost at exit"
    )
    assert "teardown ran" not in done.stdout, "os._exit no longer skips the teardown"


def test_every_lazy_command_s_line_in_help_is_its_own() -> None:
    from putio_mirror.cli.main import LAZY_COMMANDS

    for name, lazy in LAZY_COMMANDS.items():
        assert lazy.load().get_short_help_str(1000) == lazy.short_help, name


def test_help_imports_no_command_module_that_it_does_not_run() -> None:
    code = (
        "import sys; from putio_mirror.cli.main import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('putio_mirror.cli.')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    loaded = shown.stdout.strip().splitlines()[-1]
    for lazy in ("status", "doctor", "history", "login", "configfile", "completion"):
        assert f"putio_mirror.cli.{lazy}'" not in loaded, loaded
    assert "status" in shown.stdout and "doctor" in shown.stdout  # still listed in --help
