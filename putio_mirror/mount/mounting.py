"""Mount the account: check the mount point, build the parts, serve until unmounted.

The binding is mfusepy (ctypes over the system's libfuse 3 on Linux, macFUSE on
macOS): a pure-Python wheel with no compiler or libfuse headers needed, maintained,
and multi-threaded, so many readers are served at once. libfuse's own signal
handlers turn SIGTERM, SIGINT and SIGHUP into a clean unmount; ``serve`` then
returns and everything it opened is closed.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool
from urllib3._collections import RecentlyUsedContainer

from putio_mirror.config.remote_folders import with_folders_found
from putio_mirror.config.settings import Settings
from putio_mirror.core.errors import ConfigError, ExitCode, FatalError, JournalError
from putio_mirror.core.state import JournalFacts
from putio_mirror.journal.reader import JournalReader
from putio_mirror.mount.blocks import CACHE_DIR_NAME, BlockCache
from putio_mirror.mount.kernel import ReadAheadKnob
from putio_mirror.mount.listing import Listing, Places
from putio_mirror.mount.node import NodeFetcher, Timing
from putio_mirror.mount.reading import ReadAheadPolicy, RemoteReads
from putio_mirror.net.sessions import Session, sibling_of
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
#: The most readers' threads whose put.io client is kept (``_LinkAskers``): every FUSE
#: thread, and as many read-ahead workers.
KEPT_CLIENTS = 2 * MAX_THREADS
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
        # staging by where it leads, as a run names it (app/run.places)
        places = Places(settings.download_dir, settings.staging_dir.resolve())
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
    links = _LinkAskers(functools.partial(_new_client, settings, timeout), _pooled_session(stack))
    stack.callback(links.close)
    session = _pooled_session(stack)
    timing = Timing(options.read_timeout, options.max_outage)
    fetcher = NodeFetcher(session, links.url_for, timing)
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


def _new_client(settings: Settings, timeout: float, session: requests.Session) -> PutioClient:
    assert settings.token is not None
    token = settings.token.reveal()
    return PutioClient(
        token, settings.api_url, settings.upload_url, timeout=timeout, session=session
    )


class _LinkAskers:
    """put.io's ``files/{id}/url`` as the readers ask it: over a client per thread, kept.

    ``PutioClient`` gives each thread but the one that made it a session of its own,
    kept in a ``threading.local``. A FUSE thread is libfuse's, not Python's: ctypes gives
    it a new Python thread state for each call, its thread-locals gone at the call's end,
    so each link asked for made a session again and found its pool again (~0.1 ms of
    CPU: 200 first reads, 200 sessions). A client made on the thread that asks uses its
    session as its maker's; it is kept by the thread's id, which a libfuse thread keeps
    from call to call. Its session is a sibling of ``session``, over its pool.
    """

    def __init__(
        self, make: Callable[[requests.Session], PutioClient], session: requests.Session
    ) -> None:
        self._make = make
        self._session = session
        #: by thread id, the thread asked longest ago first
        self._clients: OrderedDict[int, PutioClient] = OrderedDict()
        self._lock = threading.Lock()

    def url_for(self, file_id: int) -> str:
        return self._client_here().download_url(file_id, retry=False)

    def _client_here(self) -> PutioClient:
        thread = threading.get_ident()
        with self._lock:
            client = self._clients.get(thread)
            if client is not None:
                self._clients.move_to_end(thread)
                return client
        client = self._make(sibling_of(self._session))  # made here: this thread's own
        with self._lock:
            self._clients[thread] = client
            # A thread gone (an idle read-ahead worker ends) leaves its client behind; the
            # ones asked longest ago are let go (their sessions' pool is the shared one).
            while len(self._clients) > KEPT_CLIENTS:
                self._clients.popitem(last=False)
        return client

    def close(self) -> None:
        """The mount is ending: every client ends its retries (the pool closes with
        ``session``)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            client.close()


def _pooled_session(stack: ExitStack) -> requests.Session:
    return stack.enter_context(_pooled())


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

    Read afresh at each look, read-only (``JournalReader``: nothing created, upgraded or
    written), no connection kept between looks: a journal not made yet is read once a
    sync makes it; one deleted or moved away while mounted is said once (``Listing``)
    and let go of (a journal kept open kept the deleted file, its ``-wal`` and ``-shm``
    in use for the mount's life, and never saw the one the next sync makes there, which
    is read now).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._read_before = False

    def facts(self) -> JournalFacts:
        with self._reader() as reader:
            return JournalFacts() if reader is None else JournalFacts(downloads=reader.downloads())

    def latest_run_mark(self) -> object:
        with self._reader() as reader:
            runs = reader.recent_runs(1) if reader is not None else ()
        return (runs[0].id, runs[0].finished_at) if runs else None

    @contextmanager
    def _reader(self) -> Iterator[JournalReader | None]:
        """The journal, open for one look; None if it is not made yet. Raise JournalError
        if it cannot be read, or if it was read before and is gone now."""
        reader = JournalReader.open(self._url)
        if reader is None:
            if self._read_before:
                raise JournalError(
                    f"the journal {self._url} was deleted or moved away",
                    "the next sync makes a new one there, which the mount reads",
                )
            yield None
            return
        with reader:
            yield reader
        self._read_before = True
