"""How a dry run shows a plan: a readable table of a large plan, every row on demand, JSON;
and that it creates no journal (nor pays for reading one) when there is none yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from putio_mirror.core.plan import CancelTransfer, Download, Plan
from putio_mirror.core.render import plan_json, plan_rows
from putio_mirror.journal.where import surely_missing_file
from tests.mirror_env import Mirror


def downloads(count: int) -> tuple[Download, ...]:
    return tuple(
        Download(file_id=n, relative_path=f"show/e{n:05}.srt", size=1000, crc32=None, why="new")
        for n in range(count)
    )


def test_a_large_plan_shows_the_first_rows_of_each_kind_and_counts_the_rest() -> None:
    cancels = (CancelTransfer(transfer_id=7, name="Seeding", why="seeding"),)
    plan = Plan(downloads(10_000) + cancels)
    rows = plan_rows(plan, per_kind=20)
    assert len(rows) == 20 + 1 + 1  # 20 downloads, the cancel, one "… and 9980 more"
    assert ("download", "… and 9980 more", "", "--all shows every row") in rows
    assert [row[0] for row in rows].count("cancel seeding") == 1
    assert len(plan_rows(plan)) == 10_001


def test_plan_json_lists_every_action_with_its_key_and_size() -> None:
    payload = plan_json(Plan(downloads(3)))
    assert [action["key"] for action in payload["actions"]] == [  # type: ignore[index]
        "download:0",
        "download:1",
        "download:2",
    ]
    assert payload["actions"][0]["size"] == 1000  # type: ignore[index]
    assert str(payload["summary"]).startswith("Plan: 3 download")


def test_dry_run_json_and_all_through_the_cli(mirror: Mirror) -> None:
    for n in range(30):
        mirror.fake.add_file(f"sub{n:02}.srt", size=100)
    table = mirror.run("sync", "--dry-run")
    assert table.code == 0
    assert "… and 10 more" in table.out and "sub29.srt" not in table.out
    every = mirror.run("sync", "--dry-run", "--all")
    assert "sub29.srt" in every.out and "more" not in every.out
    machine = mirror.run("sync", "--dry-run", "--json")
    assert machine.code == 0
    payload = json.loads(machine.out)
    assert len(payload["actions"]) == 30 and payload["actions"][0]["kind"] == "download"


def test_a_piped_table_is_not_cut_at_80_columns(mirror: Mirror) -> None:
    name = "A.Very.Long.Release.Name.With.Many.Words.2026.1080p.WEB-DL.DDP5.1.H.264-GROUP.mkv"
    mirror.fake.add_file(name, size=100)
    result = mirror.run("sync", "--dry-run")
    assert name in result.out


def test_json_without_dry_run_is_a_usage_error(mirror: Mirror) -> None:
    result = mirror.run("sync", "--json")
    assert result.code == 2 and "--dry-run" in result.err + result.out


def test_a_dry_run_without_a_journal_creates_none_and_imports_no_sqlalchemy(
    mirror: Mirror,
) -> None:
    mirror.fake.add_file("e01.srt", size=100)
    code = (
        "import sys; from putio_mirror.cli.main import main; "
        f"code = main(['--config', {str(mirror.config)!r}, 'sync', '--dry-run']); "
        "print('exit', code, 'sqlalchemy' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert "e01.srt" in shown.stdout, shown.stderr
    assert shown.stdout.split()[-3:] == ["exit", "0", "False"]
    assert not mirror.journal.exists()


@pytest.mark.parametrize(
    ("url", "missing"),
    [
        ("sqlite:///{tmp}/absent.sqlite3", True),
        ("sqlite:///{tmp}/present.sqlite3", False),
        ("sqlite:///{tmp}/absent.sqlite3?mode=ro", False),  # in doubt: SQLAlchemy decides
        ("sqlite:///{tmp}/with%20escape.sqlite3", False),
        ("sqlite:///file:{tmp}/absent.sqlite3", False),
        ("sqlite:///:memory:", False),
        ("sqlite://", False),
        ("postgresql+psycopg://user@localhost/journal", False),
    ],
)
def test_only_a_plain_sqlite_file_url_is_known_missing_without_sqlalchemy(
    tmp_path: Path, url: str, missing: bool
) -> None:
    (tmp_path / "present.sqlite3").touch()
    assert surely_missing_file(url.format(tmp=tmp_path)) is missing
