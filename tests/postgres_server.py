"""A throwaway PostgreSQL server for the tests: a fresh cluster in a temp folder, gone after.

``find_binaries()`` locates ``initdb``, ``pg_ctl`` and ``postgres`` (on PATH, else in Debian's
``/usr/lib/postgresql/<version>/bin``); ``PostgresServer(bindir)`` is a context manager that
runs ``initdb`` into a temp folder, starts the server on 127.0.0.1 only (a free port, its unix
socket in the temp folder, trust auth, no fsync) and, on leaving, stops it and removes the
folder. PostgreSQL refuses to run as root, so under root the cluster belongs to ``nobody``.

``scripts/ensure-postgres.sh`` (run by ``.ci/run``) searches the same places, in the same
order, and installs Debian's ``postgresql`` package when they hold nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
# Colon-separated folders searched instead of PATH and Debian's (empty: pretend there are none).
BINDIRS_ENV = "PUTIO_MIRROR_TEST_POSTGRES_BINDIRS"
RUN_AS_WHEN_ROOT = "nobody"
SUPERUSER = "postgres"
START_ATTEMPTS = 3
# Speed over durability: the cluster lives for one test session.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
}


class PostgresUnavailable(RuntimeError):
    """The throwaway server could not be set up; the message says why and what to look at."""


@dataclass(frozen=True)
class Owner:
    """Who runs the server's programs: None for this process's own user."""

    uid: int | None = None
    gid: int | None = None


def find_binaries(env: Mapping[str, str] | None = None) -> Path | None:
    """Given an environment, return the first folder holding all of PROGRAMS, else None."""
    for folder in candidate_folders(os.environ if env is None else env):
        if all(_is_program(folder / name) for name in PROGRAMS):
            return folder
    return None


def candidate_folders(env: Mapping[str, str]) -> list[Path]:
    """Given an environment, return where to look: BINDIRS_ENV if set, else PATH then Debian's."""
    override = env.get(BINDIRS_ENV)
    if override is not None:
        return [Path(part) for part in override.split(os.pathsep) if part]
    on_path = [Path(part) for part in env.get("PATH", "").split(os.pathsep) if part]
    return on_path + sorted(Path("/").glob(DEBIAN_BINDIRS.lstrip("/")), key=_version, reverse=True)


def _version(bindir: Path) -> int:
    """Given ``/usr/lib/postgresql/<version>/bin``, return the version (newest is preferred)."""
    name = bindir.parent.name
    return int(name) if name.isdigit() else -1


def _is_program(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


class PostgresServer:
    """A throwaway cluster: ``with PostgresServer(bindir) as server: use(server.url)``."""

    def __init__(self, bindir: Path, *, timeout: float = 30.0) -> None:
        self._bindir = bindir
        self._timeout = timeout
        self._owner = _owner_for(os.geteuid())
        self._root: Path | None = None
        self._port: int | None = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The superuser's SQLAlchemy URL of the ``postgres`` database; raise if not started."""
        if self._port is None:
            raise PostgresUnavailable("the throwaway PostgreSQL server is not running")
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self._port}/postgres"

    @property
    def data_dir(self) -> Path:
        if self._root is None:
            raise PostgresUnavailable("the throwaway PostgreSQL server has no folder yet")
        return self._root / "data"

    def start(self) -> None:
        """Create the cluster and start it; raise PostgresUnavailable (after cleaning up) if not."""
        try:
            self._root = Path(tempfile.mkdtemp(prefix="putio-pg-", dir=_temp_parent(self._owner)))
            self._hand_over(self._root)
            self._initdb()
            self._configure()
            self._launch()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server at once (nothing in it is worth a clean shutdown) and remove it all."""
        if self._root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", check=False)
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None
        self._port = None

    def stop_for(self, seconds: float) -> None:
        """Given a time, stop the server (fast: every session is cut, as in a restart), wait
        that long and start it again on its port; raise PostgresUnavailable if it did not."""
        self.halt()
        time.sleep(seconds)
        self.resume()

    def halt(self) -> None:
        """Stop the server fast (every session is cut), keeping its data and its port for
        ``resume``; raise PostgresUnavailable if it is not running."""
        if self._port is None:
            raise PostgresUnavailable("the throwaway PostgreSQL server is not running")
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")

    def resume(self) -> None:
        """Start a halted server again on its port; raise PostgresUnavailable if it did not."""
        if self._port is None or not self._start_on(self._port):
            raise PostgresUnavailable(f"PostgreSQL did not start again:\n{self._log_tail()}")

    def _hand_over(self, root: Path) -> None:
        """Give the temp folder to the user who runs the server (a no-op unless we are root)."""
        if self._owner.uid is not None and self._owner.gid is not None:
            os.chown(root, self._owner.uid, self._owner.gid)

    def _initdb(self) -> None:
        self._run(
            "initdb",
            *("-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"),
            *("--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"),
        )

    def _configure(self) -> None:
        assert self._root is not None
        lines = [f"{name} = {value}" for name, value in SETTINGS.items()]
        # The default socket folder (/var/run/postgresql) is root's; ours is private.
        lines.append(f"unix_socket_directories = '{self._root}'")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# putio-mirror tests\n" + "\n".join(lines) + "\n")

    def _launch(self) -> None:
        """Start on a free port, trying another if someone took it between the probe and bind."""
        for _ in range(START_ATTEMPTS):
            port = free_port()
            if self._start_on(port):
                self._port = port
                return
            if "already in use" not in self._log_tail():
                break
        raise PostgresUnavailable(f"PostgreSQL did not start; its log ends:\n{self._log_tail()}")

    def _start_on(self, port: int) -> bool:
        """Given a port, start the server and wait until it accepts connections; say if it did."""
        wait = ("-w", "-t", str(max(1, round(self._timeout))))
        options = ("-D", str(self.data_dir), "-l", str(self._log_path), *wait, "-o", f"-p {port}")
        return self._run("pg_ctl", "start", *options, check=False).returncode == 0

    @property
    def _log_path(self) -> Path:
        return self.data_dir.parent / "server.log"

    def _log_tail(self, lines: int = 20) -> str:
        log = self._log_path
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Given a program of PROGRAMS and its arguments, run it as the owner; raise if it fails."""
        command = [str(self._bindir / program), *args]
        try:
            result = subprocess.run(
                command,
                user=self._owner.uid,
                group=self._owner.gid,
                # Leave root's supplementary groups behind along with root.
                extra_groups=None if self._owner.uid is None else [],
                cwd=self._root,
                env=_server_env(os.environ),
                capture_output=True,
                text=True,
                timeout=self._timeout + 10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresUnavailable(f"{program} could not run: {error}") from error
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresUnavailable(f"{program} failed ({result.returncode}):\n{output}")
        return result


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody was listening on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _owner_for(euid: int) -> Owner:
    """Given our effective uid, return who must run the server: root may not, so ``nobody``."""
    if euid != 0:
        return Owner()
    try:
        entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError as error:
        raise PostgresUnavailable(
            f"running as root, and there is no {RUN_AS_WHEN_ROOT!r} user to run PostgreSQL as"
        ) from error
    return Owner(entry.pw_uid, entry.pw_gid)


def _server_env(env: Mapping[str, str]) -> dict[str, str]:
    """Given our environment, return it without PG* variables, which would redirect pg_ctl."""
    return {name: value for name, value in env.items() if not name.startswith("PG")}


def _temp_parent(owner: Owner) -> str:
    """Given the owner, return a temp folder it can reach: TMPDIR's if it may enter, else /tmp."""
    parent = Path(tempfile.gettempdir()).resolve()
    if owner.uid is None or _enterable_by_all(parent):
        return str(parent)
    return "/tmp"


def _enterable_by_all(folder: Path) -> bool:
    return all(path.stat().st_mode & stat.S_IXOTH for path in (folder, *folder.parents))
