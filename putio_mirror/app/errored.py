"""``transfers retry`` and ``transfers dismiss``: a person's answer to a put.io transfer in
ERROR, which the mirror itself never touches (put.io gave up; only a person knows whether
to try again or let it go).

Each command is a run in the journal with one action per transfer, so ``history`` says
who retried or dismissed what. Only transfers in ERROR are taken: an id of any other
transfer is refused before anything is done, so a typo cannot remove a live download.
Its journal's place is checked first, as a sync's is (``opening.journal_place``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from putio_mirror.app.opening import journal_place, open_journal
from putio_mirror.app.run import open_client
from putio_mirror.config.settings import Settings
from putio_mirror.core.attention import Attention
from putio_mirror.core.errors import ConfigError, ExitCode, MirrorError
from putio_mirror.core.state import Transfer
from putio_mirror.putio.client import PutioClient

if TYPE_CHECKING:  # opened by app/opening, as every journal a command writes
    from putio_mirror.journal.store import Journal

Verb = Literal["retry", "dismiss"]
STATUS_HINT = "`putio-mirror status` lists put.io's transfers; those in ERROR show their ids"


@dataclass(frozen=True)
class Errored:
    """What a command did to transfers in ERROR, and what needs a person about its journal."""

    handled: tuple[Handled, ...]
    attention: tuple[Attention, ...]


@dataclass(frozen=True)
class Handled:
    """What became of one transfer in ERROR."""

    transfer: Transfer
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.error is None


def chosen(transfers: Sequence[Transfer], ids: Sequence[int]) -> tuple[Transfer, ...]:
    """Given put.io's transfers and the ids a person named (none: every one in ERROR),
    return the transfers to act on; raise ConfigError naming ids not in ERROR."""
    errored = {transfer.id: transfer for transfer in transfers if transfer.status == "ERROR"}
    if not ids:
        return tuple(errored[key] for key in sorted(errored))
    known = {transfer.id: transfer for transfer in transfers}
    wrong = [
        f"#{key} is {known[key].status}, not in ERROR" if key in known else f"#{key} is unknown"
        for key in ids
        if key not in errored
    ]
    if wrong:
        raise ConfigError(
            "only put.io transfers in ERROR are taken: " + "; ".join(wrong), STATUS_HINT
        )
    return tuple(errored[key] for key in dict.fromkeys(ids))


def handle_errored(
    settings: Settings, verb: Verb, ids: Sequence[int], clock: Callable[[], datetime]
) -> Errored:
    """Given settings, ``retry`` or ``dismiss`` and the ids (none: every transfer in
    ERROR), do it to each, journaled; return what became of each.

    Raise JournalError, before put.io is asked anything, if the journal is refused where
    it is (``journal_place``): the person's answer waits for the journal it belongs in."""
    place = journal_place(settings, clock())
    with open_client(settings) as client:
        targets = chosen(client.list_transfers(), ids)
        if not targets:
            return Errored((), place.attention)
        with open_journal(place) as journal:
            return Errored(_journaled(journal, client, verb, targets, clock), place.attention)


def _journaled(
    journal: Journal,
    client: PutioClient,
    verb: Verb,
    targets: Sequence[Transfer],
    clock: Callable[[], datetime],
) -> tuple[Handled, ...]:
    run_id = journal.start_run(f"transfers {verb} on {socket.gethostname()}", clock())
    handled: list[Handled] = []
    try:
        for transfer in targets:
            action_id = journal.action_started(
                run_id, f"{verb}-transfer", f"transfer:{transfer.id}", transfer.name, clock()
            )
            outcome = _one(client, verb, transfer)
            journal.action_finished(
                action_id,
                "done" if outcome.done else "failed",
                clock(),
                error=outcome.error,
                detail=f"was: {transfer.error_message or 'no reason given'}",
            )
            handled.append(outcome)
    finally:
        failed = sum(1 for outcome in handled if not outcome.done)
        code = ExitCode.ITEMS_FAILED if failed or len(handled) < len(targets) else ExitCode.OK
        summary = f"{len(handled) - failed} done, {failed} failed"
        journal.finish_run(run_id, clock(), int(code), summary)
    return tuple(handled)


def _one(client: PutioClient, verb: Verb, transfer: Transfer) -> Handled:
    try:
        if verb == "retry":
            client.retry_transfer(transfer.id)
        else:
            client.remove_transfers([transfer.id])
    except MirrorError as error:
        if error.exit_code != ExitCode.ITEMS_FAILED:
            raise  # a refused token or an outage ends the command, not just this transfer
        return Handled(transfer, error.message)
    return Handled(transfer)
