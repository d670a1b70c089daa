"""The fake account's file tree and how put.io renders its items as JSON.

Children always get a larger id than their parent (there is no move), which
lets folder sizes be summed in one pass over ids in descending order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from putio_mirror.fakeputio.content import Content, GeneratedContent

ROOT_ID = 0
_TYPES_BY_EXTENSION = {
    "VIDEO": ("mkv", "mp4", "avi", "m4v", "mov", "wmv", "ts", "webm", "mpg"),
    "AUDIO": ("mp3", "flac", "m4a", "ogg", "wav", "aac", "opus"),
    "IMAGE": ("jpg", "jpeg", "png", "gif", "bmp", "webp"),
    "ARCHIVE": ("zip", "rar", "7z", "tar", "gz", "bz2", "xz"),
    "PDF": ("pdf",),
    "TEXT": ("txt", "nfo", "srt", "sub", "md", "log", "torrent", "magnet"),
}
_CONTENT_TYPES = {
    "mkv": "video/x-matroska",
    "mp4": "video/mp4",
    "avi": "video/x-msvideo",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "jpg": "image/jpeg",
    "png": "image/png",
    "zip": "application/zip",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "nfo": "text/plain",
    "srt": "application/x-subrip",
    "torrent": "application/x-bittorrent",
}


@dataclass
class Item:
    """One file or folder of the fake account."""

    id: int
    name: str
    parent_id: int | None
    content: Content | None
    folder_type: str
    created_at: str
    crc32: str | None
    #: put.io leaves hidden files out of listings unless asked with ``hidden=1``
    hidden: bool = False

    @property
    def is_folder(self) -> bool:
        return self.content is None


class FileTree:
    """Given nothing, hold a root folder (id 0) and every item added below it."""

    def __init__(self, created_at: str, first_id: int = 10_000) -> None:
        root = Item(ROOT_ID, "Your Files", None, None, "REGULAR", created_at, None)
        self._items: dict[int, Item] = {ROOT_ID: root}
        self._children: dict[int, list[int]] = {ROOT_ID: []}
        self._next_id = first_id
        # Folder sizes, summed once per change of the tree: rendering one file object must
        # not cost a walk of a 100,000-item account (benchmarks time the product, not us).
        self._sizes: dict[int, int] | None = None

    def add(
        self, name: str, parent_id: int, content: Content | None, folder_type: str, stamp: str
    ) -> int:
        """Given a name and an existing parent folder, add an item; raise ValueError if invalid."""
        if "/" in name or "\0" in name:
            raise ValueError(f"name {name!r} contains '/' or NUL")
        parent = self._items.get(parent_id)
        if parent is None or not parent.is_folder:
            raise ValueError(f"parent {parent_id} is not a folder")
        item_id, self._next_id = self._next_id, self._next_id + 1
        self._sizes = None
        crc = None if content is None else content.crc32()
        self._items[item_id] = Item(item_id, name, parent_id, content, folder_type, stamp, crc)
        self._children[parent_id].append(item_id)
        if content is None:
            self._children[item_id] = []
        return item_id

    def add_generated(self, name: str, parent_id: int, size: int, stamp: str) -> int:
        """Given a name, parent and size, add a file of deterministic content seeded by its id."""
        return self.add(name, parent_id, GeneratedContent(self._next_id, size), "REGULAR", stamp)

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    def children(self, folder_id: int) -> list[Item]:
        return [self._items[child] for child in self._children.get(folder_id, [])]

    def every_item(self) -> list[Item]:
        """Return every item except the root, in id order."""
        return [self._items[key] for key in sorted(self._items) if key != ROOT_ID]

    def delete(self, item_id: int) -> None:
        """Given an item id other than the root, remove the item and its subtree."""
        item = self._items.pop(item_id)
        self._sizes = None
        for child in self._children.pop(item_id, []):
            self.delete(child)
        if item.parent_id is not None and item.parent_id in self._children:
            self._children[item.parent_id].remove(item_id)

    def resized(self) -> None:
        """A file's content was replaced: its folders' sizes are summed again."""
        self._sizes = None

    def sizes(self) -> dict[int, int]:
        """Return the size of every item (read-only); a folder's is the sum of its descendants."""
        if self._sizes is None:
            self._sizes = self._sum_sizes()
        return self._sizes

    def _sum_sizes(self) -> dict[int, int]:
        totals = {key: 0 for key in self._items}
        for key in sorted(self._items, reverse=True):
            item = self._items[key]
            if item.content is not None:
                totals[key] += item.content.size
            if item.parent_id is not None:
                totals[item.parent_id] += totals[key]
        return totals


def item_json(item: Item, sizes: dict[int, int]) -> dict[str, Any]:
    """Given an item and the tree's sizes, return it as a put.io file object."""
    extension = _extension(item.name) if not item.is_folder else None
    return {
        "id": item.id,
        "name": item.name,
        "parent_id": item.parent_id,
        "size": sizes.get(item.id, 0),
        "file_type": "FOLDER" if item.is_folder else _file_type(extension),
        "content_type": _content_type(item.is_folder, extension),
        "extension": extension,
        "crc32": item.crc32,
        "created_at": item.created_at,
        "updated_at": item.created_at,
        "first_accessed_at": None,
        "folder_type": item.folder_type,
        "icon": None,
        "screenshot": None,
        "is_hidden": item.hidden,
        "is_mp4_available": False,
        "is_shared": False,
        "opensubtitles_hash": None,
    }


def _extension(name: str) -> str | None:
    stem, dot, extension = name.rpartition(".")
    return extension.lower() if dot and stem and extension else None


# extension -> file type: one lookup per file object (an account listing renders 100,000)
_TYPE_OF_EXTENSION = {
    extension: file_type
    for file_type, extensions in _TYPES_BY_EXTENSION.items()
    for extension in extensions
}


def _file_type(extension: str | None) -> str:
    return _TYPE_OF_EXTENSION.get(extension or "", "FILE")


def _content_type(is_folder: bool, extension: str | None) -> str:
    if is_folder:
        return "application/x-directory"
    return _CONTENT_TYPES.get(extension or "", "application/octet-stream")
