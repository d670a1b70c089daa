"""The FUSE file system: the mounted tree, read-only, mirror-aware.

Every call is answered from the listing's current view (no API request); a file the
mirror holds is read from its local copy (no network at all), any other through
``RemoteReads``, bypassing the kernel's page cache (see ``DirectFUSE.open``). Nothing
here writes anywhere: the mount is read-only (``ro``), and an open for writing is
refused with ``EROFS`` besides. Extended attributes show the mirror's state:
``user.putio.id``, ``user.putio.crc32`` and ``user.putio.mirrored`` (the local copy's
path, or empty).

A streamed file read in order from its first byte to its last (``cp``, ``rsync``, a
checksum) is checked against put.io's CRC32 as it goes (``_Check``): bytes a node got
wrong fail that last read with ``EIO``, so the copy fails instead of being wrong
without a word, and the file's blocks are dropped, so the next read fetches them
again instead of being served the same wrong bytes. A read that is not in order (a
player's seek, a scanner's probe) cannot be checked and is not.

put.io may list other bytes (another size or CRC32) under a file's id: from the
refresh that shows it, a file opened before fails its reads with ``EIO`` (its node
serves the new bytes, which read on would join the old), and the blocks kept of it are
dropped. Before that refresh nothing tells the change (the node's answers carry no
validator): only a read in order from the first byte fails, by its CRC32.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mfusepy

from putio_mirror.fetch.crc import crc32
from putio_mirror.mount.ending import SessionWatch
from putio_mirror.mount.listing import Listing
from putio_mirror.mount.node import FileRef, Unavailable
from putio_mirror.mount.reading import RemoteReads, Stream
from putio_mirror.mount.tree import Node

logger = logging.getLogger(__name__)

XATTR_ID = "user.putio.id"
XATTR_CRC32 = "user.putio.crc32"
XATTR_MIRRORED = "user.putio.mirrored"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_NO_ATTRIBUTE = getattr(errno, "ENODATA", 61)  # Linux; macOS says ENOATTR (93)
_NANOSECONDS = 1_000_000_000
#: Wider than any read libfuse hands over (see ``_buffer_at``); the array is never made,
#: only viewed over libfuse's buffer, so its width costs nothing.
_WIDEST_READ = 1 << 30
_WidestRead = ctypes.c_char * _WIDEST_READ


class WrongBytes(Exception):
    """A streamed file read whole did not have put.io's CRC32."""


class _Check:
    """The CRC32 of a streamed file's bytes as read in order from the first; given up at
    the first read out of order."""

    def __init__(self, expected: str | None) -> None:
        self._expected = expected.lower() if expected else None
        self._next = 0 if self._expected else -1
        self._value = 0
        self._lock = threading.Lock()

    def add(self, offset: int, data: memoryview, size: int) -> None:
        """Given a read's offset and bytes and the file's size, count them if they follow
        the bytes counted; raise WrongBytes once the whole file was counted, wrong."""
        with self._lock:
            if offset != self._next:
                self._next = -1  # out of order: this open file is not checked
                return
            self._value = crc32(data, self._value)
            self._next += len(data)
            if self._next < size:
                return
            self._next = -1
            actual = f"{self._value:08x}"
        if actual != self._expected:
            raise WrongBytes(f"its bytes have CRC32 {actual}, put.io lists {self._expected}")


@dataclass
class Handle:
    """An open file: its node as opened, and its local copy's descriptor, or its reading
    stream from the node."""

    node: Node
    descriptor: int | None
    stream: Stream = field(default_factory=Stream)
    ref: FileRef = field(init=False)
    check: _Check = field(init=False)

    def __post_init__(self) -> None:
        self.ref = FileRef(self.node.id, self.node.size)
        self.check = _Check(self.node.crc32 if self.descriptor is None else None)


class PutioFS(mfusepy.Operations):  # type: ignore[misc]
    """Given the listing and the remote reader, answer the kernel's FUSE calls."""

    use_ns = True  # times in integer nanoseconds

    def __init__(
        self, listing: Listing, reads: RemoteReads, before_open: Callable[[], None] = lambda: None
    ) -> None:
        self._listing = listing
        self._before_open = before_open
        self._reads = reads
        self._handles: dict[int, Handle] = {}
        #: how many handles are open under each path
        self._open_paths: dict[str, int] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._owner = (os.getuid(), os.getgid())
        self._ending = SessionWatch(reads.close)
        # Blocks kept of a file put.io now lists other bytes for are another file's.
        listing.when_replaced(reads.forget)

    def init(self, path: str) -> None:
        self._ending.start()

    def destroy(self, path: str) -> None:
        self._ending.stop()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if fh is not None:
            return self._stat(self._handle(fh).node)
        node = self._listing.view.tree.lookup(path)
        if node is None:
            node = self._opened(path)
        if node is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return self._stat(node)

    def readdir(self, path: str, fh: int) -> list[str | tuple[str, int, int]]:
        node = self._node(path)
        if not node.is_folder:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        # Each entry's type goes with its name, so `find -type f` needs no stat of each.
        tree, prefix = self._listing.view.tree, f"{node.path}/" if node.path else ""
        entries: list[str | tuple[str, int, int]] = [".", ".."]
        for name in node.children:
            child = tree.lookup(prefix + name)
            entries.append((name, _mode(child.is_folder) if child else 0, 0))
        return entries

    def open(self, path: str, flags: int) -> int:
        if flags & _WRITE_FLAGS:
            raise mfusepy.FuseOSError(errno.EROFS)
        node = self._node(path)
        if node.is_folder:
            raise mfusepy.FuseOSError(errno.EISDIR)
        handle = Handle(node, self._open_local(node))
        self._before_open()  # the kernel sets the file's read-ahead once this open is answered
        with self._lock:
            number = next(self._numbers)
            self._handles[number] = handle
            self._open_paths[node.path] = self._open_paths.get(node.path, 0) + 1
        return number

    def _open_local(self, node: Node) -> int | None:
        """Return a descriptor of the node's local copy, or None to stream it."""
        return self._listing.open_copy(node)

    def _replaced(self, handle: Handle) -> bool:
        """Whether put.io lists other bytes under an open file's id than when it was opened
        (renamed, moved or deleted since, it still reads what it opened)."""
        now = self._listing.view.tree.by_id(handle.node.id)
        opened = handle.node
        return now is not None and (now.size, now.crc32) != (opened.size, opened.crc32)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self.read_into(fh, memoryview(buffer), offset)])

    def read_into(self, fh: int, into: memoryview, offset: int) -> int:
        """Given an open file, a buffer and an offset, fill the buffer from there (less at
        the end of the file); return how many bytes were put in it."""
        handle = self._handle(fh)
        if handle.descriptor is not None:
            return os.preadv(handle.descriptor, [into], offset)
        if self._replaced(handle):
            # Its node serves the new bytes now: reading on would join two files as one.
            logger.warning("mount: put.io file %d changed while open; read fails", handle.ref.id)
            raise mfusepy.FuseOSError(errno.EIO)
        try:
            done = 0
            for piece in self._reads.pieces(handle.ref, offset, len(into), handle.stream):
                into[done : done + len(piece)] = piece
                done += len(piece)
            handle.check.add(offset, into[:done], handle.ref.size)
            return done
        except WrongBytes as error:
            self._reads.forget(handle.ref.id)
            logger.warning("mount: put.io file %d read whole was wrong: %s", handle.ref.id, error)
            raise mfusepy.FuseOSError(errno.EIO) from error
        except Unavailable as error:
            logger.warning("mount: read failed: %s", error)
            raise mfusepy.FuseOSError(errno.EIO) from error
        except OSError as error:  # the block cache's disk
            logger.warning("mount: read of put.io file %d failed: %s", handle.ref.id, error)
            raise mfusepy.FuseOSError(errno.EIO) from error

    def streamed(self, fh: int) -> bool:
        """Whether an open file is streamed from its node (not read from a local copy)."""
        return self._handle(fh).descriptor is None

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            handle = self._handles.pop(fh, None)
            if handle is not None:
                self._close_path(handle.node.path)
        if handle is not None and handle.descriptor is not None:
            os.close(handle.descriptor)
        return 0

    def _opened(self, path: str) -> Node | None:
        """Given a path the listing no longer has, return the node of a file open under it.

        The kernel asks an open file's attributes (``fstat``: players ask what they play)
        by the path it was opened under. Renamed or deleted on put.io since, that path
        leads nowhere, yet the file is still read by its id: it keeps what it had.
        """
        wanted = path.strip("/")
        with self._lock:
            if wanted not in self._open_paths:
                return None
            return next(h.node for h in self._handles.values() if h.node.path == wanted)

    def _close_path(self, path: str) -> None:
        count = self._open_paths.pop(path) - 1
        if count:
            self._open_paths[path] = count

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        value = self._attributes(self._node(path)).get(name)
        if value is None:
            raise mfusepy.FuseOSError(_NO_ATTRIBUTE)
        return value.encode("utf-8")

    def listxattr(self, path: str) -> list[str]:
        return list(self._attributes(self._node(path)))

    def statfs(self, path: str) -> dict[str, int]:
        tree = self._listing.view.tree
        block = 4096
        return {
            "f_bsize": block,
            "f_frsize": block,
            "f_blocks": -(-tree.total_size() // block),
            "f_bfree": 0,
            "f_bavail": 0,
            "f_files": len(tree),
            "f_ffree": 0,
            "f_namemax": 255,
        }

    def _attributes(self, node: Node) -> dict[str, str]:
        values = {XATTR_ID: str(node.id)}
        if not node.is_folder:
            values[XATTR_CRC32] = node.crc32 or ""
            local = self._listing.local_copy(node)
            values[XATTR_MIRRORED] = str(local) if local is not None else ""
        return values

    def _node(self, path: str) -> Node:
        node = self._listing.view.tree.lookup(path)
        if node is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return node

    def _handle(self, fh: int) -> Handle:
        with self._lock:
            handle = self._handles.get(fh)
        if handle is None:
            raise mfusepy.FuseOSError(errno.EBADF)
        return handle

    def _stat(self, node: Node) -> dict[str, Any]:
        when = int(node.mtime * _NANOSECONDS)
        return {
            "st_mode": _mode(node.is_folder),
            "st_nlink": 2 if node.is_folder else 1,
            "st_size": node.size,
            "st_blocks": -(-node.size // 512),
            "st_mtime": when,
            "st_ctime": when,
            "st_atime": when,
            "st_uid": self._owner[0],
            "st_gid": self._owner[1],
        }


class DirectFUSE(mfusepy.FUSE):  # type: ignore[misc]
    """mfusepy's FUSE, but a read copies the file system's bytes straight into libfuse's
    buffer: mfusepy's own takes them as one ``bytes`` and copies that, which cost every
    streamed byte a copy more (a block of the cache joined into ``bytes``, then moved)."""

    def open(self, path: bytes, fip: Any) -> int:
        """Open as mfusepy does, but a streamed file's reads bypass the page cache
        (``direct_io``): our reply lands straight in the reader's buffer, instead of in
        page cache the kernel must first find fresh memory for. That copy was half of the
        mount's CPU on a 2 GiB read, and on a VM sometimes 6 of its 7 CPU s. Our own
        read-ahead and memory blocks do what the page cache did. The price: a shared
        ``mmap`` of a streamed file fails (ENODEV) with libfuse < 3.16; a private one
        works. Mirrored files keep the page cache: they are read from local disk."""
        info = fip.contents
        info.fh = self.operations.open(path.decode(self.encoding, self.errors), info.flags)
        info.direct_io = int(self.operations.streamed(info.fh))
        return 0

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        into = _buffer_at(ctypes.addressof(buf.contents), size)
        count: int = self.operations.read_into(fip.contents.fh, into, offset)
        return count


def _buffer_at(address: int, size: int) -> memoryview:
    """Given the address and size of libfuse's buffer, return a writable view of it.

    The view is a slice of one array type wider than any FUSE read (the kernel's largest
    is 256 MiB, with fuse.max_pages_limit at its most), never ``c_char * size``: ctypes
    builds that type for each size not seen, ~10 µs and a dozen objects the raised GC
    threshold leaves as garbage for a while. A scanner asking for odd sizes (handed on as
    asked: ``direct_io``) grew the mount by ~15 MiB over 10,000 reads and doubled a read's
    CPU. Only the slice is handed on: nothing past ``size`` is ever written.
    """
    if size > _WIDEST_READ:  # no kernel sends this; but never a view past the buffer
        return memoryview((ctypes.c_char * size).from_address(address)).cast("B")
    return memoryview(_WidestRead.from_address(address)).cast("B")[:size]


def _mode(is_folder: bool) -> int:
    return stat.S_IFDIR | 0o555 if is_folder else stat.S_IFREG | 0o444
