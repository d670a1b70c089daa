"""The mount's view of the world: put.io's tree and which files the mirror holds, refreshed.

One refresh costs one flat listing of put.io (a handful of requests whatever the
account's size) and one read of the journal; between refreshes every look-up, however
often a media scanner walks the tree, is answered from memory. A refresh runs every
``interval`` seconds, and soon after a sync finishes (the journal's newest run changes).
A refresh that fails keeps the view it had: the mount goes on serving what it knew.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from putio_mirror.core.errors import MirrorError
from putio_mirror.core.state import JournalFacts, RemoteFile
from putio_mirror.local.staging import VERIFIED_DIR
from putio_mirror.mount.copies import Checks, Copy, is_copy_of, open_beneath
from putio_mirror.mount.tree import Node, Tree

logger = logging.getLogger(__name__)

#: How often the journal is asked whether a sync finished, at most (seconds).
RUN_POLL_SECONDS = 5.0


class Remote(Protocol):
    def list_all_files(self) -> tuple[RemoteFile, ...]: ...


class RunMarker(Protocol):
    """What the journal offers the mount: its facts, and a mark that changes with each run."""

    def facts(self) -> JournalFacts: ...

    def latest_run_mark(self) -> object: ...


@dataclass(frozen=True)
class View:
    """The tree and, by file id, where the mirror keeps a verified copy."""

    tree: Tree
    mirrored: Mapping[int, Copy]


@dataclass(frozen=True)
class Places:
    downloads: Path
    staging: Path


class Listing:
    """Given put.io, the journal (None: nothing mirrored) and the folders, keep a View."""

    def __init__(
        self,
        remote: Remote,
        journal: RunMarker | None,
        places: Places,
        root_id: int,
        interval: float,
    ) -> None:
        self._remote = remote
        self._journal = journal
        self._places = places
        self._root_id = root_id
        self._interval = interval
        self._view = View(Tree.build((), root_id), MappingProxyType({}))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: what kept the journal from being read at the last refresh, said once
        self._trouble: str | None = None
        self._replaced: Callable[[int], object] = lambda file_id: None
        self._checks = Checks()

    @property
    def view(self) -> View:
        return self._view

    def when_replaced(self, call: Callable[[int], object]) -> None:
        """Given a call, make it with the id of each file a refresh finds other bytes
        under (put.io lists another size or CRC32 for it than the refresh before)."""
        self._replaced = call

    def refresh(self) -> None:
        """List put.io and read the journal; swap the new view in. Raise MirrorError."""
        files = self._remote.list_all_files()
        before, tree = self._view.tree, Tree.build(files, self._root_id)
        self._view = View(tree, self._mirrored_now())
        logger.debug("mount: listed %d put.io items", len(tree))
        for file_id in _replaced(before, tree):
            logger.info("mount: put.io has other bytes under file %d now", file_id)
            self._replaced(file_id)

    def _mirrored_now(self) -> Mapping[int, Copy]:
        """The journal's verified copies; what was known before if the journal is unreadable
        (the mount still streams everything, it only reads less locally)."""
        if self._journal is None:
            return MappingProxyType({})
        try:
            facts = self._journal.facts()
        except MirrorError as error:
            self._tell_trouble(error.message)
            return self._view.mirrored
        if self._trouble is not None:
            logger.info("mount: the journal reads again; its mirrored files are read locally")
            self._trouble = None
        return MappingProxyType(_mirrored(facts, self._places))

    def _tell_trouble(self, trouble: str) -> None:
        """Say what keeps the journal from being read, once: a refresh every few minutes
        for days would say it again each time (a journal deleted stays deleted until a
        sync makes a new one)."""
        if trouble != self._trouble:
            logger.warning(
                "mount: could not read the journal (%s); which files are mirrored here is "
                "not known until it can be: the copies known before are still read, every "
                "other file is streamed from put.io",
                trouble,
            )
        self._trouble = trouble

    def local_copy(self, node: Node) -> Path | None:
        """Given a file node, return the mirror's copy of it if it is there, whole."""
        descriptor = self.open_copy(node)
        if descriptor is None:
            return None
        os.close(descriptor)
        return self._view.mirrored[node.id].path

    def open_copy(self, node: Node) -> int | None:
        """Given a file node, return a read-only descriptor of the mirror's copy of it, or
        None if there is none that may be served as put.io's file: moved on by a media
        manager or tidied, reached only through a symlink, not of its size, verified
        with another CRC32 than put.io lists now (put.io's bytes changed since), or not
        known to be the file placed (``copies.Checks``: checked meanwhile)."""
        copy = self._view.mirrored.get(node.id)
        if copy is None or not _same_crc32(copy.crc32, node.crc32):
            return None
        try:
            descriptor = open_beneath(copy.base, copy.relative)
        except OSError as error:
            logger.debug("mount: local copy %s unusable (%s)", copy.path, error)
            return None
        # What was opened is what is checked, not something put there after a look.
        found = os.fstat(descriptor)
        if not is_copy_of(found, node.size) or (
            copy.placed and not self._checks.ours(node.id, copy, node.crc32 or copy.crc32, found)
        ):
            os.close(descriptor)
            return None
        return descriptor

    def start(self) -> None:
        """Refresh in the background until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="mount-listing", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._checks.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        poll = min(self._interval, RUN_POLL_SECONDS)
        mark = self._run_mark()
        waited = 0.0
        while not self._stop.wait(poll):
            waited += poll
            latest = self._run_mark()
            if waited < self._interval and latest == mark:
                continue
            mark, waited = latest, 0.0
            try:
                self.refresh()
            except MirrorError as error:
                logger.warning("mount: could not list put.io (%s); keeping the last listing", error)

    def _run_mark(self) -> object:
        if self._journal is None:
            return None
        try:
            return self._journal.latest_run_mark()
        except MirrorError as error:  # said at each refresh already; every 5 s is too often
            logger.debug("mount: could not read the journal (%s)", error)
            return None


def _replaced(before: Tree, after: Tree) -> list[int]:
    """Given two listings, return the ids of the files listed in both with other bytes."""
    replaced = []
    for node in after.files():
        old = before.by_id(node.id)
        if old is not None and (old.size, old.crc32) != (node.size, node.crc32):
            replaced.append(node.id)
    return replaced


def _same_crc32(verified: str | None, listed: str | None) -> bool:
    """Whether the bytes verified are those put.io lists (either CRC32 unknown: trusted)."""
    return verified is None or listed is None or verified.lower() == listed.lower()


def _mirrored(facts: JournalFacts, places: Places) -> dict[int, Copy]:
    """Given the journal's facts, return by file id where each verified file is kept."""
    copies: dict[int, Copy] = {}
    for file_id, record in facts.downloads.items():
        if record.is_placed and record.placed_path and _inside(record.placed_path):
            relative = os.path.normpath(record.placed_path)
            identity = record.placed_identity
            copies[file_id] = Copy(places.downloads, relative, record.crc32, True, identity)
        elif record.is_verified and not record.is_placed:
            # Staging by where it leads (as a run uses it), no link inside it followed.
            copies[file_id] = Copy(places.staging, f"{VERIFIED_DIR}/{file_id}", record.crc32)
    return copies


def _inside(relative: str) -> bool:
    """A journal path names a place inside the download folder (never ``..`` or absolute)."""
    normal = os.path.normpath(relative)
    return not normal.startswith("/") and normal != ".." and not normal.startswith("../")
