"""The script that records docs/first-five-minutes.md still runs the whole first session
(here without the clone and install, with this checkout's CLI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_first_five_minutes_run_from_login_to_the_second_sync(tmp_path: Path) -> None:
    out = tmp_path / "five.md"
    script = ROOT / "scripts" / "first_five_minutes.py"
    done = subprocess.run(
        [sys.executable, str(script), "--no-install", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    shown = re.findall(r"^\$ (.+)\n(?:.*\n)*?```\n\n(?:exit (\d+))?", page, re.MULTILINE)
    codes = {command: code for command, code in shown}
    assert codes["putio-mirror login"] == "0" and "Logged in to put.io as" in page
    assert codes["putio-mirror sync"] == "0" and "  submit      Sintel.torrent" in page
    assert codes["putio-mirror --quiet sync"] == "0"
    assert "download Sintel (2010)/Sintel.2010.mkv" in page
    assert str(tmp_path) not in page and "/home/" not in page, "the home folder is shown as ~"
