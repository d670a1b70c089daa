"""Write docs/putio-mirror.1, the manual page, from the CLI itself and the README.

    python scripts/manpage.py           # write it
    python scripts/manpage.py --check   # exit 1 if it is not what the CLI says now

Every command with its usage, help and options comes from click; the exit codes from the
README's table (one text for both). No date in the page, so the same CLI gives the same
bytes. The wheel installs it as share/man/man1/putio-mirror.1, where pipx links man pages.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's CLI, whichever putio_mirror is installed

import click  # noqa: E402

from putio_mirror import __version__  # noqa: E402
from putio_mirror.cli.main import cli  # noqa: E402

PAGE = ROOT / "docs" / "putio-mirror.1"
PROG = "putio-mirror"


def escape(text: str) -> str:
    """Given plain text, return it safe inside roff (backslashes, hyphens, leading dots)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def paragraphs(help_text: str) -> str:
    """Given a click help text, return roff paragraphs (``\\b`` blocks kept as they are)."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", inspect.cleandoc(help_text)):
        if block.startswith("\b"):
            lines = [escape(line.strip()) for line in block.splitlines()[1:]]
            out.append(".PP\n.nf\n" + "\n".join(lines) + "\n.fi")
        else:
            out.append(".PP\n" + escape(" ".join(block.split())))
    return "\n".join(out)


def commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command under ``group``, with its words, in the order of ``--help``."""
    context = click.Context(group, info_name=PROG)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def options(command: click.Command, context: click.Context) -> str:
    lines: list[str] = []
    for parameter in command.get_params(context):
        record = parameter.get_help_record(context)
        # --help is said once, under OPTIONS; an argument's choices are in the usage line
        if record is None or not record[1] or "--help" in record[0].split(", "):
            continue
        names, text = record
        lines.append(f".TP\n.B {escape(names)}\n{escape(text)}")
    return "\n".join(lines)


def section(title: str, body: str) -> str:
    return f".SH {title}\n{body}"


def command_entry(words: tuple[str, ...], command: click.Command) -> str:
    context = click.Context(command, info_name=" ".join((PROG, *words)))
    usage = " ".join(command.collect_usage_pieces(context))
    head = (
        f'.SS "{escape(" ".join(words))}"\n.B {escape(" ".join((PROG, *words)))}\n{escape(usage)}'
    )
    return "\n".join(
        part for part in (head, paragraphs(command.help or ""), options(command, context)) if part
    )


def exit_codes() -> str:
    """The README's table of exit codes as a roff list."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", table, flags=re.MULTILINE)
    return "\n".join(
        f".TP\n.B {code}\n{escape(meaning.replace('`', ''))}" for code, meaning in rows
    )


def render() -> str:
    context = click.Context(cli, info_name=PROG)
    parts = [
        f'.TH PUTIO\\-MIRROR 1 "" "{PROG} {__version__}" "User Commands"',
        section("NAME", f"{PROG} \\- keep a put.io account and this machine in step"),
        section("SYNOPSIS", f".B {PROG}\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]..."),
        section("DESCRIPTION", paragraphs(cli.help or "")),
        section(
            "OPTIONS",
            options(cli, context) + "\n.TP\n.B \\-h, \\-\\-help\nShow the help "
            "of putio\\-mirror, or of the command it follows, and exit.",
        ),
        section("COMMANDS", "\n".join(command_entry(w, c) for w, c in commands(cli))),
        section("EXIT STATUS", exit_codes()),
        section(
            "FILES",
            ".TP\n.I ~/.config/putio\\-mirror/mirror.yaml\nThe config file "
            "(\\fB$XDG_CONFIG_HOME\\fR); \\fBputio\\-mirror config init\\fR writes the "
            "documented example there.\n"
            ".TP\n.I ~/.config/putio\\-mirror/token\nThe put.io token "
            "\\fBputio\\-mirror login\\fR writes (mode 600).\n"
            ".TP\n.I ~/.local/state/putio\\-mirror/journal.sqlite3\nThe journal "
            "(\\fB$XDG_STATE_HOME\\fR), unless \\fBpaths.journal\\fR names another.",
        ),
        section(
            "ENVIRONMENT",
            ".TP\n.B PUTIO_MIRROR_CONFIG\n"
            "The config file, when \\fB\\-\\-config\\fR is not given.\n"
            ".TP\n.B PUTIO_TOKEN\nThe put.io token, before any token file.",
        ),
        section("SEE ALSO", "The README and contrib/README.md of the source tree."),
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE} is out of date: run python scripts/manpage.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
