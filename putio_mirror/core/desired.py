"""What RPC clients asked for: which desires to submit, and their own seeding limits.

Pure: the reconciler hands in the snapshot and the time. A desire is submitted once
by info-hash, like a blackhole file: not when the journal knows its submission, not
when put.io already has a transfer with its hash, not while it is paused.

One exception: a .torrent added over RPC after its magnet was submitted (the blackhole
follows the same rule for a .torrent dropped in a later pass: ``magnet_of_ours``,
``has_started``). A private
torrent added to put.io as a magnet usually never starts (no DHT or PEX to bring its
metadata), so while put.io has fetched nothing of the magnet's transfer (ours), that
transfer is cancelled and the .torrent submitted in its place; once put.io fetches it,
it is left alone: a torrent under way is never sent to put.io twice.

A .torrent dropped in the blackhole for a magnet desire counts as one added over RPC
(two doors at once): the desire takes it (``SubmitDesired.dropped``) and submits it, in
place of the magnet's transfer as above, or before the magnet ever goes to put.io.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType

from putio_mirror.core.mirroring import RemoteTree
from putio_mirror.core.plan import (
    CancelTransfer,
    DeleteRemote,
    Download,
    RecordTransfer,
    SubmitDesired,
    TidyStaging,
)
from putio_mirror.core.state import (
    FINISHED_STATUSES,
    BlackholeItem,
    Desire,
    JournalFacts,
    Snapshot,
    Transfer,
)

SECONDS_PER_MINUTE = 60
#: put.io's statuses of a transfer before it fetches anything: queued, waiting, looking
#: for a magnet's metadata (PREPARING_DOWNLOAD), or failed that way (with no byte fetched)
NOT_STARTED_STATUSES = frozenset({"IN_QUEUE", "WAITING", "PREPARING_DOWNLOAD", "ERROR"})
_NONE_DROPPED: Mapping[str, BlackholeItem] = MappingProxyType({})


def plan_desires(
    snapshot: Snapshot,
    records: Iterable[RecordTransfer] = (),
    dropped: Mapping[str, BlackholeItem] = _NONE_DROPPED,
) -> list[SubmitDesired]:
    """Given the world, the transfers this plan records as ours (``plan_records``) and the
    .torrent files in the blackhole by info-hash, return a submission for every desire not
    yet on put.io, and for every .torrent whose magnet put.io has not started (see above),
    in the download order.

    A magnet desire with a .torrent in the blackhole takes that .torrent first (two doors
    at once: Sonarr's magnet over RPC, a .torrent dropped by hand or by another client):
    then the desire alone submits the torrent, into its category, and whichever pass
    submits it again after a crash sends the .torrent, never the magnet."""
    submitted = submitted_ids(snapshot.journal)
    recorded = {record.info_hash: record for record in records}
    ours = submitted | {key: record.transfer_id for key, record in recorded.items()}
    on_putio = transfers_by_hash(snapshot.transfers, ours)
    actions = []
    for desire in sorted(snapshot.journal.desires.values(), key=_queue_place):
        torrent = dropped.get(desire.info_hash) if desire.magnet_uri else None
        # a .torrent answers put.io's refusal of a magnet: the desire takes it, error gone
        if desire.paused or (desire.error is not None and torrent is None):
            continue
        transfer = on_putio.get(desire.info_hash)
        if desire.info_hash not in submitted and transfer is None:
            actions.append(_submitting(desire, torrent))
        elif transfer is not None and _replaceable(desire, torrent, transfer, ours):
            actions.append(_replacing(desire, torrent, transfer, recorded.get(desire.info_hash)))
    return actions


def _replaceable(
    desire: Desire, torrent: BlackholeItem | None, transfer: Transfer, ours: Mapping[str, int]
) -> bool:
    """Given a desire, a .torrent of it in the blackhole (None: none), its hash's transfer
    on put.io and the transfers known as ours (the journal's, and those this plan
    records: a run stopped mid-replacement forgot that transfer), say whether the desire
    is given as a .torrent and that transfer is ours, made of a magnet, and has fetched
    nothing yet."""
    return (
        (not desire.magnet_uri or torrent is not None)
        and magnet_of_ours(desire.info_hash, transfer, ours)
        and not has_started(transfer)
    )


def submitted_ids(journal: JournalFacts) -> dict[str, int]:
    """Given the journal's facts, return the transfer of each info-hash submitted (an
    attempt that got no answer has none yet)."""
    return {
        key: entry.transfer_id
        for key, entry in journal.submissions.items()
        if entry.transfer_id is not None
    }


def added_by_us(transfer: Transfer, hashes: Collection[str], transfer_ids: Collection[int]) -> bool:
    """Given a transfer, the info-hashes putio-mirror submitted and the transfers they
    became, say whether putio-mirror added it (grooming touches only those, unless
    ``transfers.manage_foreign``)."""
    return transfer.id in transfer_ids or (transfer.hash or "") in hashes


def transfers_by_hash(
    transfers: Iterable[Transfer], ours: Mapping[str, int]
) -> dict[str, Transfer]:
    """Given put.io's transfers and those known as ours (by info-hash), return one transfer
    for each info-hash: ours if put.io lists several, else the oldest (the lowest id). The
    plan must not hang on the order put.io lists them in."""
    by_hash: dict[str, Transfer] = {}
    for transfer in sorted(transfers, key=lambda entry: entry.id):
        if transfer.hash and (
            transfer.hash not in by_hash or ours.get(transfer.hash) == transfer.id
        ):
            by_hash[transfer.hash] = transfer
    return by_hash


def magnet_of_ours(info_hash: str, transfer: Transfer, ours: Mapping[str, int]) -> bool:
    """Given an info-hash, its transfer on put.io and the transfers known as ours (by
    info-hash), say whether that transfer is ours and made of a magnet: one a .torrent
    may take the place of (the blackhole's too), never one a person added by hand."""
    return ours.get(info_hash) == transfer.id and (transfer.source or "").lower().startswith(
        "magnet:"
    )


def has_started(transfer: Transfer) -> bool:
    """Given a transfer, say whether put.io has begun to fetch it (or finished): a .torrent
    no longer takes its place then, a torrent under way is never sent twice."""
    return transfer.status not in NOT_STARTED_STATUSES or bool(transfer.percent_done)


def in_place_of_magnet(transfer: Transfer) -> str:
    """Given a magnet's transfer put.io has not started, say why its .torrent replaces it."""
    return f"its .torrent, in place of its magnet (put.io has not started it: {transfer.status})"


def _submitting(desire: Desire, torrent: BlackholeItem | None) -> SubmitDesired:
    if torrent is None:
        return SubmitDesired(desire.name, desire.info_hash, desire.magnet_uri, desire.category)
    why = f"asked for over RPC, as the .torrent dropped in the blackhole ({torrent.name})"
    dropped = (torrent.path, torrent.name)
    return SubmitDesired(
        desire.name, desire.info_hash, category=desire.category, why=why, dropped=dropped
    )


def _replacing(
    desire: Desire, torrent: BlackholeItem | None, transfer: Transfer, record: RecordTransfer | None
) -> SubmitDesired:
    """The submission of a desire's .torrent in its magnet's place; it waits for the
    magnet transfer's record when this plan records it."""
    requires = (record.key,) if record is not None else ()
    return SubmitDesired(
        desire.name,
        desire.info_hash,
        category=desire.category,
        replaces=transfer.id,
        replaced_uri=transfer.source or "",
        why=in_place_of_magnet(transfer),
        requires=requires,
        dropped=None if torrent is None else (torrent.path, torrent.name),
    )


def _queue_place(desire: Desire) -> tuple[int, int]:
    return desire.queue_position, desire.rpc_id


def in_queue_order(fetches: list[Download], snapshot: Snapshot, tree: RemoteTree) -> list[Download]:
    """Given the files to fetch, return them with the RPC items' files first, item by item
    in the download order (``queue-move-*``), then every other file as it came."""
    places: dict[int, tuple[int, int]] = {}
    desires = snapshot.journal.desires
    for transfer in snapshot.transfers:
        desire = desires.get(transfer.hash or "")
        if desire is None or transfer.file_id is None:
            continue
        place = _queue_place(desire)
        places[transfer.file_id] = place
        places.update((remote.id, place) for remote in tree.files_under(transfer.file_id))
    if not places:
        return fetches
    last = (1 << 62, 0)  # sorted() is stable: within an item, and after the items, as before
    return sorted(fetches, key=lambda action: places.get(action.file_id, last))


def has_seed_limits(desire: Desire | None) -> bool:
    return desire is not None and (
        desire.seed_ratio_limit is not None or desire.seed_idle_minutes is not None
    )


def seeded_enough_for(desire: Desire, transfer: Transfer) -> bool:
    """Given a desire with seed limits and its seeding transfer, say whether either limit
    is reached (put.io's seeding time stands in for Transmission's idle time)."""
    ratio = transfer.current_ratio
    limit = desire.seed_ratio_limit
    if limit is not None and ratio is not None and ratio >= limit:
        return True
    seconds = transfer.seconds_seeding
    if desire.seed_idle_minutes is not None and seconds is not None:
        return seconds >= desire.seed_idle_minutes * SECONDS_PER_MINUTE
    return False


def desire_of(transfer: Transfer, desires: Mapping[str, Desire]) -> Desire | None:
    return desires.get(transfer.hash or "")


def held_ids(snapshot: Snapshot, tree: RemoteTree) -> frozenset[int]:
    """Given the world, return the ids of the items (and every file in them) that must not be
    fetched or placed now: those of paused desires (``torrent-stop``) and removed ones."""
    paused = {info_hash for info_hash, desire in snapshot.journal.desires.items() if desire.paused}
    items = {
        transfer.file_id
        for transfer in snapshot.transfers
        if transfer.file_id is not None and (transfer.hash or "") in paused
    }
    return _with_files(items, tree) | removed_ids(snapshot, tree)


def removed_ids(snapshot: Snapshot, tree: RemoteTree) -> frozenset[int]:
    """Given the world, return the ids of the items RPC clients removed and of every file
    in them: by their transfer while put.io lists it, and by what the journal saw of them
    (the transfer is cleaned soon after a removal; the files stay unless purged)."""
    journal = snapshot.journal
    items = set(journal.removed_ids)
    items.update(
        transfer.file_id
        for transfer in snapshot.transfers
        if transfer.file_id is not None and (transfer.hash or "") in journal.removed_desires
    )
    return _with_files(items, tree)


def _with_files(items: set[int], tree: RemoteTree) -> frozenset[int]:
    found = set(items)
    for item_id in items:
        found.update(remote.id for remote in tree.files_under(item_id))
    return frozenset(found)


def plan_removed_leftovers(snapshot: Snapshot, removed: frozenset[int]) -> list[TidyStaging]:
    """Given the world and the ids of removed items and their files, return the tidying of
    what staging holds of them (a half-fetched part, verified bytes, a build folder): the
    client said it wants none of it, so no grace period."""
    return [
        TidyStaging(entry.kind, entry.remote_id, entry.size, why="removed by its RPC client")
        for entry in snapshot.local.staging
        if entry.remote_id in removed
    ]


def plan_removed_transfers(snapshot: Snapshot) -> list[CancelTransfer]:
    """Given the world, cancel the unfinished transfers of removed desires (finished ones
    are cleaned, seeding ones cancelled, by the grooming rules)."""
    removed = snapshot.journal.removed_desires
    return [
        CancelTransfer(transfer.id, transfer.name, why="removed by its RPC client")
        for transfer in sorted(snapshot.transfers, key=lambda entry: entry.id)
        if (transfer.hash or "") in removed and transfer.status not in FINISHED_STATUSES
    ]


def plan_purges(snapshot: Snapshot, tree: RemoteTree) -> list[DeleteRemote]:
    """Given the world, delete on put.io the items RPC clients removed with their data
    (when the policy says so), if all of each is inside the mirrored folder."""
    return [
        DeleteRemote(item_id, tree.by_id[item_id].name, why="removed with its data over RPC")
        for item_id in sorted(snapshot.journal.purged_items)
        if item_id in tree.by_id and tree.all_named(item_id)
    ]
