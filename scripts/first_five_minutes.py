"""Record a new user's first five minutes into ``docs/first-five-minutes.md``.

Fresh clone → install → ``config init`` → edit → ``login`` → ``doctor`` → ``sync --dry-run``
→ ``sync`` → ``status``, each command run for real in a fresh home folder, its output and
exit code written down as a person would see them. put.io is the local imitation on
127.0.0.1 (the only change to the example config is its address and an OAuth app id), and
the person at put.io/link is played by the script, which links the code ``login`` shows.

    .venv/bin/python scripts/first_five_minutes.py        # clones and installs (~1 min)
    .venv/bin/python scripts/first_five_minutes.py --no-install --out /tmp/five.md

``--no-install`` skips the clone and the install and runs this checkout's ``putio-mirror``
(``tests/test_first_five_minutes.py`` does so, to keep the script working).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from putio_mirror.cli.demo import populate, sample_torrent  # noqa: E402
from putio_mirror.fakeputio import FakePutio  # noqa: E402

OUT = ROOT / "docs" / "first-five-minutes.md"
APP_ID = "4242"
CODE = re.compile(r"^\s+([A-Z0-9]{4,})\s*$", re.MULTILINE)


@dataclass
class Step:
    shown: str
    output: str
    #: None: not a command that ran (an edit shown as a diff, a pause in the story)
    code: int | None
    seconds: float


class Session:
    """A fresh home folder, the commands run in it, and what each printed."""

    def __init__(self, home: Path, bin_dir: Path) -> None:
        self.home = home
        self.steps: list[Step] = []
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("XDG_", "PUTIO")) and key != "VIRTUAL_ENV"
        }
        self.env |= {
            "HOME": str(home),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "100",
            "NO_COLOR": "1",
        }

    def run(self, shown: str, argv: list[str], cwd: Path | None = None) -> Step:
        started = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=cwd or self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as a terminal shows them: interleaved
            text=True,
            timeout=600,
        )
        step = Step(shown, done.stdout, done.returncode, time.perf_counter() - started)
        self.steps.append(step)
        return step

    def login(self, shown: str, argv: list[str], fake: FakePutio) -> Step:
        """Run ``login`` and, once it shows its code, link it as the person at put.io/link."""
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        seen: list[str] = []
        linker: threading.Timer | None = None
        for line in process.stdout:
            seen.append(line)
            if linker is None and (match := CODE.match(line)):
                # a person takes a few seconds to type the code at put.io/link
                linker = threading.Timer(3.0, fake.link_device, (match[1],))
                linker.start()
        code = process.wait(timeout=120)
        step = Step(shown, "".join(seen), code, time.perf_counter() - started)
        self.steps.append(step)
        return step


def edit_config(path: Path, fake: FakePutio) -> str:
    """Point the example config at the local put.io and give it an app id; return the diff."""
    before = path.read_text(encoding="utf-8")
    after = before.replace(
        "  api_url: https://api.put.io/v2", f"  api_url: {fake.api_url}"
    ).replace("  oauth_app_id: null", f"  oauth_app_id: {APP_ID}")
    after = after.replace(
        "  upload_url: https://upload.put.io/v2", f"  upload_url: {fake.upload_url}"
    )
    path.write_text(after, encoding="utf-8")
    changed = [
        f"-{old}\n+{new}"
        for old, new in zip(before.splitlines(), after.splitlines(), strict=True)
        if old != new
    ]
    return "\n".join(changed) + "\n"


def record(no_install: bool, out: Path) -> list[Step]:
    with tempfile.TemporaryDirectory(prefix="five-minutes-") as temp, FakePutio() as fake:
        populate(fake)
        home = Path(temp) / "home"
        home.mkdir()
        venv = home / ".local" / "share" / "putio-mirror"
        bin_dir = Path(sys.executable).parent if no_install else venv / "bin"
        session = Session(home, bin_dir)
        fake.add_transfer("Big Buck Bunny (2008)", status="SEEDING", file_id=_folder(fake))
        if not no_install:
            clone = session.run(
                "git clone <this repository> putio-mirror",
                ["git", "clone", "--quiet", str(ROOT), "putio-mirror"],
            )
            _check(clone)
            # what `pipx install ./putio-mirror` does, spelled out (pipx may not be installed)
            _check(
                session.run(
                    "python3 -m venv ~/.local/share/putio-mirror",
                    [sys.executable, "-m", "venv", str(venv)],
                )
            )
            _check(
                session.run(
                    "~/.local/share/putio-mirror/bin/pip install --quiet ./putio-mirror",
                    [str(venv / "bin" / "pip"), "install", "--quiet", str(home / "putio-mirror")],
                )
            )
            session.steps[-1].output = ""  # pip's own notices about itself are noise here
        exe = str(bin_dir / "putio-mirror")
        _check(session.run("putio-mirror config init", [exe, "config", "init"]))
        config = home / ".config" / "putio-mirror" / "mirror.yaml"
        diff = edit_config(config, fake)
        session.steps.append(Step("$EDITOR ~/.config/putio-mirror/mirror.yaml", diff, None, 0.0))
        _check(session.login("putio-mirror login", [exe, "login", "--poll-interval", "1"], fake))
        session.run("putio-mirror doctor", [exe, "doctor"])
        blackhole = home / "putio" / "blackhole"
        session.run("mkdir -p ~/putio/blackhole", ["mkdir", "-p", str(blackhole)])
        # the media manager drops a torrent (a sample, written here beforehand)
        (home / "Downloads").mkdir()
        (home / "Downloads" / "Sintel.torrent").write_bytes(sample_torrent())
        session.run(
            "cp ~/Downloads/Sintel.torrent ~/putio/blackhole/",
            ["cp", str(home / "Downloads" / "Sintel.torrent"), str(blackhole)],
        )
        time.sleep(2.5)  # a file younger than 2 s may still be being written: it waits
        for argv in (["doctor"], ["sync", "--dry-run"], ["sync"], ["status"]):
            session.run("putio-mirror " + " ".join(argv), [exe, *argv])
        fake.finish_transfers()  # later: put.io has fetched Sintel and seeds it
        later = "Later: put.io has fetched Sintel, and the timer runs `sync --quiet`."
        session.steps.append(Step(later, "", None, 0.0))
        for argv in (["--quiet", "sync"], ["status"], ["history"], ["history", "--run", "2"]):
            session.run("putio-mirror " + " ".join(argv), [exe, *argv])
        steps = session.steps
        out.write_text(render(steps, home, fake), encoding="utf-8")
    return steps


def _folder(fake: FakePutio) -> int:
    return next(item["id"] for item in fake.files() if item["name"] == "Big Buck Bunny (2008)")


def _check(step: Step) -> None:
    if step.code not in (0, None):
        raise SystemExit(f"{step.shown} failed with exit {step.code}:\n{step.output}")


def render(steps: list[Step], home: Path, fake: FakePutio) -> str:
    total = sum(step.seconds for step in steps)
    lines = [
        "# The first five minutes",
        "",
        "A new user's first session, recorded by `scripts/first_five_minutes.py` (run it again",
        "to refresh this page). Every command ran for real, in a fresh home folder (shown as",
        "`~`), in this order; put.io was the local imitation on 127.0.0.1, holding a few",
        "folders and a transfer someone started by hand, and the script played the person",
        "who types the code at put.io/link and the media manager that drops a torrent into",
        "the blackhole. The only edit to the example config points it at that imitation and",
        f"sets an OAuth app id. All the commands together took {total:.0f} s.",
        "",
    ]
    for step in steps:
        if step.code is None and not step.output:
            lines += [step.shown, ""]
            continue
        output = "\n".join(
            line.rstrip() for line in step.output.replace(str(home), "~").splitlines()
        )
        lines += ["```console", f"$ {step.shown}"]
        lines += [output] if output else []
        lines += ["```", ""]
        lines += [] if step.code is None else [f"exit {step.code}, {step.seconds:.1f} s", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true", help="use this checkout's CLI")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT}")
    options = parser.parse_args()
    for step in record(options.no_install, options.out):
        code = "" if step.code is None else step.code
        print(f"exit {code:>3}  {step.seconds:6.1f} s  {step.shown}", file=sys.stderr)
    print(f"wrote {options.out}", file=sys.stderr)


if __name__ == "__main__":
    if shutil.which("git") is None:
        raise SystemExit("git is needed for the clone")
    main()
