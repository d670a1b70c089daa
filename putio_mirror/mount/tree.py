"""The mounted tree: put.io's flat listing named exactly as the mirror names it.

``Tree.build`` takes the whole account (one flat listing) and the mirrored root and
gives every item the path ``naming.local_paths`` gives it in the download folder, so
a file is found at the same relative path through the mount and in the mirror. The
tree is an immutable value: a refresh builds a new one and swaps it in, and a walk
(``ls -R``, a media scanner) only looks things up in it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from putio_mirror.core.naming import local_paths
from putio_mirror.core.state import RemoteFile


@dataclass(frozen=True, slots=True)
class Node:
    """One item of the mounted tree; the root has id ``root_id`` and path ``""``."""

    id: int
    path: str
    is_folder: bool
    size: int
    mtime: float
    crc32: str | None
    children: tuple[str, ...] = ()


class Tree:
    """Given nodes by path (``""`` the root), look items up by their mounted path."""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self._nodes = MappingProxyType(dict(nodes))
        self._by_id = {node.id: node for node in self._nodes.values()}

    @classmethod
    def build(cls, files: Sequence[RemoteFile], root_id: int) -> Tree:
        """Given the account's flat listing and the mirrored folder's id, return its tree.

        Items the mirror leaves out (shared folders, broken parent chains) are left out.
        """
        by_id = {item.id: item for item in files}
        paths = local_paths(files, root_id)
        kids: dict[str, list[str]] = {"": []}
        for file_id in sorted(paths, key=paths.__getitem__):
            path = paths[file_id]
            parent, _, name = path.rpartition("/")
            kids.setdefault(parent, []).append(name)
            if by_id[file_id].is_folder:
                kids.setdefault(path, [])
        nodes = {path: _node(by_id[file_id], path, kids) for file_id, path in paths.items()}
        root = by_id.get(root_id)
        nodes[""] = Node(
            id=root_id,
            path="",
            is_folder=True,
            size=0,
            mtime=_mtime(root) if root is not None else 0.0,
            crc32=None,
            children=tuple(kids[""]),
        )
        return cls(nodes)

    def lookup(self, path: str) -> Node | None:
        """Given a mounted path (``/a/b`` or ``a/b``; ``/`` is the root), return its node."""
        return self._nodes.get(path.strip("/"))

    def by_id(self, item_id: int) -> Node | None:
        """Given a put.io id, return its node (None: not in the tree)."""
        return self._by_id.get(item_id)

    def __len__(self) -> int:
        return len(self._nodes)

    def files(self) -> tuple[Node, ...]:
        """Return every file node (not folders), in path order."""
        return tuple(node for _, node in sorted(self._nodes.items()) if not node.is_folder)

    def total_size(self) -> int:
        return sum(node.size for node in self._nodes.values() if not node.is_folder)


def _node(item: RemoteFile, path: str, kids: Mapping[str, list[str]]) -> Node:
    return Node(
        id=item.id,
        path=path,
        is_folder=item.is_folder,
        size=0 if item.is_folder else item.size,
        mtime=_mtime(item),
        crc32=item.crc32,
        children=tuple(kids.get(path, ())) if item.is_folder else (),
    )


def _mtime(item: RemoteFile) -> float:
    return item.updated_at.timestamp() if item.updated_at is not None else 0.0
