"""Local names for put.io's tree: relative paths that can never leave the download folder.

put.io names may hold anything but ``/`` and NUL: ``..``, backslashes, colons,
control characters, 255-byte names, NFC/NFD twins, duplicates in one folder.
``safe_component`` turns one such name into one path component that is safe on
Linux, macOS and Windows-style NAS shares; ``local_paths`` names a whole tree,
giving siblings that would collide on a case-insensitive or normalising
filesystem distinct, stable names.

Every unsafe character becomes ``_`` (plain ASCII, so the result reads the same
in every terminal and on every share). Pure: no files, no clock.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Sequence

from putio_mirror.core.state import REGULAR_FOLDER, RemoteFile

#: The top-level folder of the download folder where ``.part`` files grow.
STAGING_DIR_NAME = ".putio-mirror-staging"
#: What every unsafe character is replaced by.
SUBSTITUTE = "_"
#: The longest file name (in bytes of UTF-8) that ext4, APFS, NTFS and SMB all accept.
MAX_COMPONENT_BYTES = 255
#: The kernel refuses a path of this many bytes or more whole (PATH_MAX, its NUL counted).
PATH_MAX_BYTES = 4096
#: The longest relative path given (in bytes of UTF-8), under a download folder (and a
#: staging folder) of a short path: 512 bytes are left for theirs. Beneath a longer one
#: less is given (``room_beneath``), so that no path of ours reaches PATH_MAX_BYTES.
MAX_PATH_BYTES = 3584
#: The least room a run mirrors into: a top-level item and a file in it, each with a name
#: of full length, and room to spare. A folder of a longer path is refused as a whole.
MIN_PATH_BYTES = 1024
#: The shortest name a folder's child is cut to: a folder is made only where at least this
#: much room is left for what it holds; deeper, a subtree's files are laid flat in it.
MIN_NAME_BYTES = 64

# Names beginning with this are ours (staging, journal side files) and are never
# produced for put.io items, whatever their case.
OWN_PREFIX = ".putio-mirror"
# Separators, Windows' forbidden printable characters, C0, DEL, C1, and lone
# surrogates (JSON may carry them; they cannot be encoded as UTF-8).
_UNSAFE = re.compile('[/\\\\:*?"<>|\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff]')
# Device names Windows reserves in any case and with any extension.
_WINDOWS_RESERVED = re.compile(r"con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³]|conin\$|conout\$", re.I)
_LONGEST_RESERVED = len("conout$")
# An extension longer than this, or holding a space, is part of the name.
_MAX_EXTENSION_CHARS = 16
# An ASCII name that safe_component keeps as it is, but for a Windows device name: no
# unsafe character, not starting with "-", "." (ours begin with one) or a space, not ending
# in a space or a dot.
_PLAIN = re.compile(
    r'[^-. /\\:*?"<>|\x00-\x1f\x7f]'
    r'(?:[^/\\:*?"<>|\x00-\x1f\x7f]*[^ ./\\:*?"<>|\x00-\x1f\x7f])?'
)


def room_beneath(prefix_bytes: int) -> int:
    """Given the bytes of the longest folder path a relative path of ours is written under
    (its closing ``/`` included; the folder's own path, measured by the caller), return
    the longest relative path that keeps the whole short of PATH_MAX_BYTES: at most
    MAX_PATH_BYTES, so that names under a short folder never change."""
    return min(MAX_PATH_BYTES, PATH_MAX_BYTES - 1 - prefix_bytes)


def safe_component(name: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """Given a put.io name, return one path component safe on every common filesystem.

    The result is NFC, non-empty, not ``.`` or ``..``, free of separators and
    control characters, not ending in a space or dot, not starting with ``-``,
    not a Windows device name, not starting with ``.putio-mirror``, and at most
    ``limit`` (255) bytes of UTF-8 (the extension kept where possible).
    """
    safe = name if is_plain(name) else _made_safe(name)
    if limit < MAX_COMPONENT_BYTES and _utf8_length(safe) > limit:
        return _cut(safe, limit)
    return safe


def is_plain(name: str) -> bool:
    """Given a name, say whether it is plain ASCII that ``safe_component`` keeps as it is
    (most names are: checking costs half of applying every rule)."""
    if not name.isascii() or len(name) > MAX_COMPONENT_BYTES or not _PLAIN.fullmatch(name):
        return False
    head = name.partition(".")[0].rstrip(" ")
    return len(head) > _LONGEST_RESERVED or _WINDOWS_RESERVED.fullmatch(head) is None


def _made_safe(name: str) -> str:
    """``safe_component`` of a name that is not plain: every rule applied."""
    text = _UNSAFE.sub(SUBSTITUTE, unicodedata.normalize("NFC", name))
    # Windows drops trailing spaces and dots, so "a." and "a" would be one file.
    text = text.rstrip(" .") or SUBSTITUTE
    if text.startswith("-") or text.casefold().startswith(OWN_PREFIX):
        # "-rf" must never be read as an option; ".putio-mirror…" is our namespace.
        text = SUBSTITUTE + text
    head, dot, rest = text.partition(".")
    if _WINDOWS_RESERVED.fullmatch(head.rstrip(" ")):
        text = f"{head}{SUBSTITUTE}{dot}{rest}"
    if _utf8_length(text) > MAX_COMPONENT_BYTES:
        text = _cut(text, MAX_COMPONENT_BYTES)
    return text


def _cut(text: str, limit: int) -> str:
    """Given a safe name longer than ``limit`` bytes, cut it to fit (its extension kept)."""
    stem, extension = split_extension(text)
    return _fit(stem, extension, limit).rstrip(" .") or SUBSTITUTE


def split_extension(name: str) -> tuple[str, str]:
    """Given a file name, return (stem, extension) where extension is ``""`` or ``".ext"``.

    A leading dot (``.nfo``-style hidden names) starts no extension, and a long
    or spaced "extension" is just a dot in the name.
    """
    index = name.rfind(".")
    if index <= 0:
        return name, ""
    extension = name[index:]
    if len(extension) > _MAX_EXTENSION_CHARS or " " in extension:
        return name, ""
    return name[:index], extension


def collision_key(name: str) -> str:
    """Given a name, return the key under which case-insensitive, normalising filesystems
    see it (NFC, case-folded)."""
    if name.isascii():  # NFC already; case-folding ASCII is lower-casing it
        return name.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def local_paths(
    files: Sequence[RemoteFile],
    root_id: int,
    reserved: frozenset[str] = frozenset({STAGING_DIR_NAME}),
    *,
    room: int = MAX_PATH_BYTES,
) -> dict[int, str]:
    """Given the whole put.io tree and the id of the folder to mirror, return a relative
    POSIX path for every item under that folder (the folder itself excluded).

    Items in non-``REGULAR`` folders, and items whose parent chain is broken or
    cyclic, are omitted. Colliding siblings get distinct, stable names (see
    ``sibling_names``); a top-level name in ``reserved`` is renamed the same way.
    No path is longer than ``room`` bytes (``room_beneath`` the folders they go in, at most
    ``MAX_PATH_BYTES``): deep down, names are cut, and the files of a subtree too deep
    for folders of its own are laid flat in the deepest folder that has room (those
    subfolders get no path).
    """
    by_id = _first_by_id(files)
    root = by_id.get(root_id)
    if root_id != 0 and root is not None and not _is_descendable(root):
        return {}
    children = _children_by_parent(by_id.values())
    reserved_keys = frozenset(collision_key(name) for name in reserved)
    paths: dict[int, str] = {}
    seen = {root_id}
    # (a folder, its path with a closing "/", that path's bytes)
    queue: deque[tuple[int, str, int]] = deque([(root_id, "", 0)])
    while queue:
        folder_id, prefix, used = queue.popleft()
        left = room - used
        if _has_room_for_folders(left):
            kids = [item for item in children.get(folder_id, ()) if item.id not in seen]
        else:
            kids = _files_beneath(folder_id, children, seen)
        taken = reserved_keys if folder_id == root_id else frozenset()
        for item, name in sibling_names(kids, taken, left):
            seen.add(item.id)
            path = f"{prefix}{name}"
            paths[item.id] = path
            if item.is_folder:
                queue.append((item.id, f"{path}/", used + _utf8_length(name) + 1))
    return paths


def _has_room_for_folders(room: int) -> bool:
    """Whether a folder with ``room`` bytes left for its children's names may hold
    folders: each keeps ``MIN_NAME_BYTES`` for what it holds in turn."""
    return _folder_limit(room) >= MIN_NAME_BYTES


def _folder_limit(room: int) -> int:
    return min(MAX_COMPONENT_BYTES, room - 1 - MIN_NAME_BYTES)


def _limit(item: RemoteFile, room: int) -> int:
    """The longest name an item may have where ``room`` bytes are left."""
    return _folder_limit(room) if item.is_folder else min(MAX_COMPONENT_BYTES, room)


def _files_beneath(
    folder_id: int, children: dict[int, list[RemoteFile]], seen: set[int]
) -> list[RemoteFile]:
    """Given a folder too deep for folders of its own, return every file in its subtree
    (its subfolders marked seen: they get no path)."""
    found: list[RemoteFile] = []
    pending = [folder_id]
    while pending:
        for item in children.get(pending.pop(), ()):
            if item.id in seen:
                continue
            if item.is_folder:
                seen.add(item.id)
                pending.append(item.id)
            else:
                found.append(item)
    return found


def sibling_names(
    siblings: Iterable[RemoteFile],
    taken: frozenset[str] = frozenset(),
    room: int = MAX_PATH_BYTES,
) -> list[tuple[RemoteFile, str]]:
    """Given the items of one folder, return each with a local name unique under
    ``collision_key``, in id order.

    Of the items whose safe names collide, the lowest id keeps the plain name and
    each other gets `` (putio-<id>)`` before its extension (files) or at its end
    (folders): stable, because put.io ids never change. Names whose key is in
    ``taken`` are renamed the same way. With ``room`` bytes left in the path, a file's
    name is cut to fit it, a folder's to leave ``MIN_NAME_BYTES`` for what it holds.
    """
    ordered = sorted(siblings, key=lambda item: item.id)
    candidates = [(item, safe_component(item.name, _limit(item, room))) for item in ordered]
    used = set(taken)
    renamed: set[int] = set()
    for item, name in candidates:
        key = collision_key(name)
        if key in used:
            renamed.add(item.id)
        used.add(key)
    return [
        (
            item,
            _unique_variant(item, name, used, _limit(item, room)) if item.id in renamed else name,
        )
        for item, name in candidates
    ]


def _unique_variant(item: RemoteFile, plain: str, used: set[str], limit: int) -> str:
    """Given a colliding item and its safe name, return a variant of at most ``limit``
    bytes whose key is not in ``used`` (and add it)."""
    stem, extension = (plain, "") if item.is_folder else split_extension(plain)
    tag = f"putio-{item.id}"
    attempt = 1
    while True:
        candidate = _fit(stem, f" ({tag}){extension}", limit)
        key = collision_key(candidate)
        if key not in used:
            used.add(key)
            return candidate
        # Only a sibling literally named like our variant can get here.
        attempt += 1
        tag = f"putio-{item.id}-{attempt}"


def _fit(stem: str, tail: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """Given a stem and a tail that must be kept whole, return stem + tail cut to
    ``limit`` bytes without splitting a character of the stem."""
    room = limit - _utf8_length(tail)
    encoded = stem.encode("utf-8")
    if len(encoded) > room:
        # "ignore" drops only the character the cut went through.
        stem = encoded[: max(room, 0)].decode("utf-8", errors="ignore")
    return stem + tail


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def _first_by_id(files: Iterable[RemoteFile]) -> dict[int, RemoteFile]:
    """Given items, return them by id; of repeated ids the first is kept."""
    by_id: dict[int, RemoteFile] = {}
    for item in files:
        by_id.setdefault(item.id, item)
    return by_id


def _children_by_parent(items: Iterable[RemoteFile]) -> dict[int, list[RemoteFile]]:
    """Given items, return the usable ones grouped by parent id (shared folders dropped)."""
    children: dict[int, list[RemoteFile]] = {}
    for item in items:
        if item.is_folder and not _is_descendable(item):
            continue
        children.setdefault(item.parent_id, []).append(item)
    return children


def _is_descendable(item: RemoteFile) -> bool:
    """A user's own folder; shared roots and friends' folders are not our data."""
    return item.is_folder and item.folder_type == REGULAR_FOLDER
