"""Tell Sonarr or Radarr that an item was placed, so it imports it now rather than at its
next scan of the folder (for blackhole users; the Transmission door needs none of this).

Their command API (v3): ``POST {url}/api/v3/command`` with ``X-Api-Key`` and
``{"name": "DownloadedEpisodesScan" | "DownloadedMoviesScan", "path": <the item>}``; they
answer 201 with the queued command.
"""

from __future__ import annotations

from putio_mirror.notify.values import ArrKind, ArrServer, ItemPlaced, Trouble

SCANS: dict[ArrKind, str] = {
    "sonarr": "DownloadedEpisodesScan",
    "radarr": "DownloadedMoviesScan",
}
TIMEOUT_SECONDS = 30.0


def command_url(server: ArrServer) -> str:
    """Given a server (its URL may carry a base path, ``http://nas:8989/sonarr``), return
    the address of its command API."""
    return f"{server.url.rstrip('/')}/api/v3/command"


def rescan(server: ArrServer, item: ItemPlaced, timeout: float = TIMEOUT_SECONDS) -> Trouble | None:
    """Given a server and a placed item, ask the server to import the item's path; return
    what went wrong (None: the command was accepted). Never raises."""
    import requests

    body = {"name": SCANS[server.kind], "path": item.path}
    try:
        answer = requests.post(
            command_url(server),
            json=body,
            headers={"X-Api-Key": server.api_key},
            timeout=timeout,
            allow_redirects=False,  # a redirect would carry the key elsewhere
        )
    except requests.RequestException as error:
        return Trouble(f"{server.kind} at {server.url}: {type(error).__name__}", silent=True)
    if not 200 <= answer.status_code < 300:
        hint = " (check arr.api_key)" if answer.status_code == 401 else ""
        return Trouble(f"{server.kind} at {server.url} answered HTTP {answer.status_code}{hint}")
    return None
