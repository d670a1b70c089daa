"""Mount the account: check the mount point, build the parts, serve until unmounted.

The binding is mfusepy (ctypes over the system's libfuse 3 on Linux, macFUSE on
macOS): a pure-Python wheel with no compiler or libfuse headers needed, maintained,
and multi-threaded, so many readers are served at once. libfuse's own signal
handlers turn SIGTERM, SIGINT and SIGHUP into a clean unmount; ``serve`` then
returns and everything it opened is closed.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool
from urllib3._collections import RecentlyUsedContainer

from putio_mirror.config.remote_folders import with_folders_found
from putio_mirror.config.settings import Settings
from putio_mirror.core.errors import ConfigError, ExitCode, FatalError
from putio_mirror.core.state import JournalFacts
from putio_mirror.journal.store import Journal
from putio_mirror.mount.blocks import CACHE_DIR_NAME, BlockCache
from putio_mirror.mount.kernel import ReadAheadKnob
from putio_mirror.mount.listing import Listing, Places
from putio_mirror.mount.node import NodeFetcher, Timing
from putio_mirror.mount.reading import ReadAheadPolicy, RemoteReads
from putio_mirror.net.sessions import Session
from putio_mirror.putio.client import PutioClient

logger = logging.getLogger(__name__)

FUSE_HINT = (
    "install FUSE: on Debian/Ubuntu `apt-get install fuse3`, on macOS macFUSE "
    "(https://osxfuse.github.io)"
)

# fuse_main's answer when its loop ended on SIGTERM, SIGINT or SIGHUP (libfuse 3 helper.c:
# the loop reports the signal, fuse_main turns that into 8), after unmounting cleanly.
_ENDED_BY_SIGNAL = 8
KERNEL_CACHE_SECONDS = 10.0
#: What looking at a FUSE mount whose process is gone fails with (Linux; macOS: ENXIO).
_DEAD_MOUNT = frozenset({errno.ENOTCONN, errno.ECONNABORTED, errno.ENXIO})
#: The most kernel requests served at once. libfuse 3.12 and later serve ten unless told
#: otherwise, and a request waits for its thread: ten readers waiting on a silent node (a
#: scanner probing a slow account) left `ls`, `stat` and reads of mirrored files hanging
#: until their outage ended. A thread waiting costs little; this many waiting is unlikely.
MAX_THREADS = 256
#: The hosts whose connection pools are kept (put.io's download nodes: la1, s06, …); the
#: pool of the host used longest ago is closed when another comes.
NODE_POOLS = 16
#: The first libfuse that caps its threads, and knows the option (older ones refuse it).
_THREADS_CAPPED_SINCE = (3, 12)


class MountPointError(FatalError):
    """The mount point is missing, not a folder, not empty, or mounted already."""

    exit_code = ExitCode.USAGE


class MountFailedError(FatalError):
    """FUSE is missing or refused the mount."""

    exit_code = ExitCode.USAGE


def check_mount_point(mount_point: Path) -> None:
    """Given a mount point, return if it is an empty folder nothing is mounted on;
    raise MountPointError with a hint otherwise."""
    try:
        info = mount_point.stat()
    except FileNotFoundError:
        raise MountPointError(
            f"the mount point {mount_point} does not exist",
            f"create an empty folder for it: mkdir -p {mount_point}",
        ) from None
    except OSError as error:
        raise _unusable(mount_point, error) from error
    if not stat.S_ISDIR(info.st_mode):
        raise MountPointError(
            f"the mount point {mount_point} is not a folder", "name an empty folder"
        )
    try:
        empty = not any(mount_point.iterdir())
    except OSError as error:
        raise _unusable(mount_point, error) from error
    if os.path.ismount(mount_point):
        raise MountPointError(
            f"something is mounted on {mount_point} already",
            f"unmount it first (fusermount3 -u {mount_point}, or umount on macOS)",
        )
    if not empty:
        raise MountPointError(
            f"the mount point {mount_point} is not empty",
            "mounting there would hide its files: name an empty folder (mkdir a new one)",
        )


def _unusable(mount_point: Path, error: OSError) -> MountPointError:
    """Given the error looking at a mount point raised, return what to tell the user."""
    if error.errno in _DEAD_MOUNT:
        # A mount whose process was killed (kill -9, the OOM killer) stays in the kernel's
        # table, but every look at it fails: only unmounting clears it.
        return MountPointError(
            f"{mount_point} is a mount no longer served (its process ended without unmounting it)",
            f"unmount it first: fusermount3 -u {mount_point} (umount on macOS)",
        )
    return MountPointError(
        f"the mount point {mount_point} cannot be used ({error.strerror})",
        "name an empty folder this user can read",
    )


def serve(settings: Settings, mount_point: Path) -> None:
    """Given the settings and an empty folder, mount put.io there and serve it until it
    is unmounted (fusermount3 -u, SIGTERM, Ctrl-C). Raise MountPointError,
    MountFailedError, or the client's errors if put.io cannot be listed at the start."""
    check_mount_point(mount_point)
    if settings.token is None:
        raise ConfigError("no put.io token is configured", "set PUTIO_TOKEN or putio.token_file")
    _binding()  # FUSE missing: a hint, not an ImportError from importing fs
    from putio_mirror.mount.fs import DirectFUSE, PutioFS

    with ExitStack() as stack:
        listing = stack.enter_context(_listing(settings))
        reads = _remote_reads(settings, stack)
        options: dict[str, object] = {"ro": True, "fsname": "putio-mirror", "subtype": "putio"}
        # The kernel may keep names and stats this long: a scanner's second walk in a row
        # then costs not even a call into this process. Bounded by the refresh interval.
        cached = min(KERNEL_CACHE_SECONDS, settings.mount.refresh_seconds)
        options |= {"attr_timeout": cached, "entry_timeout": cached}
        if settings.mount.allow_other:
            options["allow_other"] = True
        options |= _thread_options(_binding())
        logger.info("mount: serving put.io on %s", mount_point)
        operations = PutioFS(listing, reads, ReadAheadKnob(mount_point).widen)
        try:
            DirectFUSE(operations, str(mount_point), foreground=True, **options)
        except RuntimeError as error:
            if error.args != (_ENDED_BY_SIGNAL,):
                message = f"FUSE refused to mount {mount_point} (libfuse error {error})"
                raise MountFailedError(message, FUSE_HINT) from error
        logger.info("mount: %s unmounted", mount_point)


def _thread_options(binding: ModuleType) -> dict[str, object]:
    """Given mfusepy, return the option lifting libfuse's cap on the requests served at
    once, where libfuse has one (3.12 and later; older ones start threads as needed)."""
    version = (binding.fuse_version_major, binding.fuse_version_minor)
    return {"max_threads": MAX_THREADS} if version >= _THREADS_CAPPED_SINCE else {}


def _binding() -> ModuleType:
    try:
        import mfusepy
    except (ImportError, OSError) as error:  # mfusepy raises OSError without libfuse
        raise MountFailedError(f"FUSE is not available here ({error})", FUSE_HINT) from error
    binding: ModuleType = mfusepy
    return binding


@contextmanager
def _listing(settings: Settings) -> Iterator[Listing]:
    """The listing, refreshed once before mounting (a bad token fails now, not later)."""
    with ExitStack() as stack:
        client = stack.enter_context(_client(settings, settings.timeout))
        settings = with_folders_found(settings, client)
        marks = _JournalMarks(settings.journal_url)
        stack.callback(marks.close)
        places = Places(settings.download_dir, settings.staging_dir)
        root = settings.policy.remote_root_id
        listing = Listing(client, marks, places, root, settings.mount.refresh_seconds)
        listing.refresh()
        listing.start()
        stack.callback(listing.stop)
        yield listing


def _remote_reads(settings: Settings, stack: ExitStack) -> RemoteReads:
    options = settings.mount
    cache = BlockCache(settings.staging_dir / CACHE_DIR_NAME, options.cache_max_bytes).open()
    stack.callback(cache.close)
    # The URL calls of readers must not wait out the API client's patience.
    timeout = min(settings.timeout, options.read_timeout)
    client = stack.enter_context(_client(settings, timeout, stack.enter_context(_pooled())))
    session = stack.enter_context(_pooled())
    timing = Timing(options.read_timeout, options.max_outage)

    def url_for(file_id: int) -> str:
        return client.download_url(file_id, retry=False)

    fetcher = NodeFetcher(session, url_for, timing)
    policy = ReadAheadPolicy.within(
        options.read_ahead_max_bytes, options.cache_max_bytes, options.connections
    )
    return RemoteReads(cache, fetcher, policy, options.max_outage, time.monotonic)


@contextmanager
def _client(
    settings: Settings, timeout: float, session: requests.Session | None = None
) -> Iterator[PutioClient]:
    assert settings.token is not None
    token = settings.token.reveal()
    with PutioClient(
        token, settings.api_url, settings.upload_url, timeout=timeout, session=session
    ) as client:
        yield client


@contextmanager
def _pooled() -> Iterator[requests.Session]:
    """A session with room in its pools for every reader at once: each FUSE thread (a
    scanner probing hundreds of files) and each read-ahead worker. A smaller pool dropped
    each connection past its size after one request (the next one a new TLS handshake
    with put.io), with a warning in the log each time: hundreds a scan of 500 files."""
    adapter = _ClosingAdapter(
        pool_connections=NODE_POOLS, pool_maxsize=MAX_THREADS + MAX_THREADS // 2
    )
    with Session(adapter) as session:
        try:
            yield session
        finally:
            adapter.close()


class _ClosingAdapter(HTTPAdapter):
    """requests' adapter, but a pool its pool manager lets go of is closed at once.

    urllib3 2 closes such a pool only once it is garbage, and the mount's session keeps
    each pool it sent a node request through (``Session.direct_pool``): a mount kept a pool
    for every download node it ever read from, its connections open for good, and its
    unmount (``close``) closed none. A closed pool is one the session asks for afresh.
    """

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: object
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pools = RecentlyUsedContainer(connections, dispose_func=_close_pool)


def _close_pool(pool: HTTPConnectionPool) -> None:
    """Close a pool's idle connections now; those in use close as they come back."""
    pool.close()


class _JournalMarks:
    """The journal as the listing needs it: facts, and a mark that changes with each run.

    Opened once it exists: a mount started before the first sync sees that sync's end.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._journal: Journal | None = None

    def facts(self) -> JournalFacts:
        journal = self._open()
        return journal.facts() if journal is not None else JournalFacts()

    def latest_run_mark(self) -> object:
        journal = self._open()
        runs = journal.recent_runs(1) if journal is not None else ()
        return (runs[0].id, runs[0].finished_at) if runs else None

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def _open(self) -> Journal | None:
        if self._journal is None:
            self._journal = Journal.open_existing(self._url)
        return self._journal
