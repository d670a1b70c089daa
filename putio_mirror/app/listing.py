"""``files list``: every remote item under the mirrored root, with its remote and local paths."""

from __future__ import annotations

from putio_mirror.app.run import open_client, places
from putio_mirror.config.remote_folders import with_folders_found
from putio_mirror.config.settings import Settings
from putio_mirror.core.attention import REMOTE_ROOT_HINT, remote_root_problem
from putio_mirror.core.errors import ConfigError
from putio_mirror.core.state import RemoteFile
from putio_mirror.local.staging import name_room


def list_remote_files(settings: Settings) -> list[dict[str, object]]:
    """Given settings, return every remote item under the mirrored root with its paths."""
    from putio_mirror.core.naming import local_paths

    with open_client(settings) as client:
        settings = with_folders_found(settings, client)
        items = client.list_all_files()
    if wrong := remote_root_problem(items, settings.policy.remote_root_id):
        raise ConfigError(wrong, REMOTE_ROOT_HINT)
    by_id = {item.id: item for item in items}
    # named as a sync names them, beneath the folders' paths
    where = places(settings)
    room = name_room(where.downloads, where.staging).room
    paths = local_paths(list(items), settings.policy.remote_root_id, room=room)
    listing: list[dict[str, object]] = []
    for item_id, local in sorted(paths.items(), key=lambda pair: pair[1]):
        item = by_id[item_id]
        listing.append(
            {
                "id": item.id,
                "path": "/".join(_remote_path(item_id, by_id, settings.policy.remote_root_id)),
                "local_path": local,
                "folder": item.is_folder,
                "size": item.size,
                "crc32": item.crc32,
            }
        )
    return listing


def _remote_path(item_id: int, by_id: dict[int, RemoteFile], root_id: int) -> list[str]:
    names: list[str] = []
    current = by_id.get(item_id)
    while current is not None and current.id != root_id:
        names.append(current.name)
        current = by_id.get(current.parent_id)
    return names[::-1]
