"""The fetchers a run's download threads use: one each, over the client's connection pool,
sharing one bandwidth limiter, the knowledge that put.io refused the token, and the pulse
that tells put.io's nodes down for everyone from one file's failing; and the witness asked
when that tells nothing (``fetch/witness.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from putio_mirror.config.settings import Settings
from putio_mirror.core.bandwidth import parse_timetable
from putio_mirror.core.errors import AuthError
from putio_mirror.fetch.engine import Fetcher
from putio_mirror.fetch.pulse import Pulse
from putio_mirror.fetch.throttle import RateLimiter
from putio_mirror.fetch.witness import first_byte_comes
from putio_mirror.net.cutting import Cover, Cutter
from putio_mirror.putio.client import PutioClient


def fetcher_factory(
    settings: Settings,
    client: PutioClient,
    clock: Callable[[], datetime],
    link_for: Callable[[int], str],
    witnesses: Callable[[], Iterable[int]],
    cutter: Cutter | None = None,
) -> Callable[[], Fetcher]:
    """One fetcher per download thread; they share the client, its connection pool, one
    bandwidth limiter and one pulse, whose witnesses are files this run fetched whole, else
    files it does not download (those mirrored before first), and the ``cutter`` that ends
    their reads (the witnesses' too) when the run stops."""
    timetable = parse_timetable(settings.bwlimit)
    # "off" needs no meter at all: that saves two calls per chunk on the hot path.
    limiter = None if timetable.unlimited else RateLimiter(lambda: timetable.limit_at(clock()))
    refused: list[AuthError] = []
    # one for the run: a fetcher tells an outage by the others' bytes, or a witness's
    pulse = Pulse(nodes_witness(settings, client, witnesses, cutter))

    def url_for(file_id: int) -> str:
        # The client gives each thread its own session: links are asked for in parallel.
        if refused:  # the token was refused once: never ask again in this run
            raise refused[0]
        try:
            return link_for(file_id)
        except AuthError as error:
            refused.append(error)
            raise

    def new_fetcher() -> Fetcher:
        return Fetcher(
            url_for,
            connections=settings.connections,
            chunk_size=settings.chunk_size,
            read_timeout=settings.read_timeout,
            max_outage=settings.max_outage,
            limiter=limiter,
            session=client.sibling_session(),
            pulse=pulse,
            cutter=cutter,
        )

    return new_fetcher


#: files asked for their first byte at most, the first that answers settling it
WITNESSES = 2


def nodes_witness(
    settings: Settings,
    client: PutioClient,
    candidates: Callable[[], Iterable[int]],
    cutter: Cutter | None = None,
) -> Callable[[Sequence[int]], bool | None]:
    """Given files not in doubt (``candidates``), return how to ask whether put.io's nodes
    send a byte of one of the files the run fetched lately, else of the candidates (None:
    there is no such file, or the run stopped: a read cut short proves nothing)."""
    cut = cutter or Cutter()  # one never cut
    link = cut_links(client, cut)

    def nodes_answer(answered: Sequence[int]) -> bool | None:
        # not closed after: a sibling shares the client's pool, which closing would close
        session = client.sibling_session()
        timeout = (10.0, settings.read_timeout)  # the fetchers' connect timeout
        asked = list(itertools.islice(itertools.chain(answered, candidates()), WITNESSES))
        if not asked:
            return None  # nobody to ask: the next fetch tells instead
        for file_id in asked:
            if cut.done:
                return None
            if first_byte_comes(link, session, file_id, timeout, cut):
                return True
        return None if cut.done else False

    return nodes_answer


def cut_links(client: PutioClient, cutter: Cutter) -> Callable[[int], str]:
    """Given the client and the run's ``cutter``, return how its downloads ask put.io for
    a file's link: once (a fetch has patience of its own), the call cut short with the
    downloads' reads (a stop, a window's end, a fatal error: ``CallStopped``). A link
    put.io sits on would hold them for the API's timeout."""

    def link(file_id: int) -> str:
        with Cover(cutter):
            return client.download_url(file_id, retry=False)

    return link
