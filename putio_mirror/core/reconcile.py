"""The reconciler: given a Snapshot of the world and a Policy, decide the Plan.

Pure: no files, no HTTP, no database, no clock (``now`` is passed in). It pairs
what should exist with what does by stable keys (info-hash, file id,
transfer id) and applies one small rule per concern. The executor performs
the actions; the next run observes again, so a crash anywhere is repaired by
planning again (level-triggered, like vdirsyncer's ``_get_actions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from putio_mirror.core.desired import (
    added_by_us,
    desire_of,
    has_seed_limits,
    has_started,
    held_ids,
    in_place_of_magnet,
    in_queue_order,
    magnet_of_ours,
    plan_desires,
    plan_purges,
    plan_removed_leftovers,
    plan_removed_transfers,
    removed_ids,
    seeded_enough_for,
    submitted_ids,
    transfers_by_hash,
)
from putio_mirror.core.mirroring import (
    Pending,
    RemoteTree,
    index_tree,
    plan_deletes,
    plan_downloads,
    plan_placements,
    plan_tidy,
    requirements_for_item,
)
from putio_mirror.core.plan import (
    Action,
    AdoptLocal,
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    Download,
    Note,
    PlaceItem,
    Plan,
    RecordTransfer,
    RejectBlackholeFile,
    SubmitMagnet,
    SubmitTorrent,
)
from putio_mirror.core.state import (
    BlackholeItem,
    Policy,
    Snapshot,
    Transfer,
)

SECONDS_PER_HOUR = 3600


def reconcile(snapshot: Snapshot, policy: Policy, now: datetime) -> Plan:
    """Given the world and the desired state, return the actions that close the gap.

    ``now`` judges seeding age when put.io does not report it, how long a failed file
    waits before its next try, and the age of staging leftovers; it is an argument so
    the function stays pure and deterministic.
    """
    tree = index_tree(snapshot.files, policy, snapshot.names, snapshot.journal.downloads)
    notes: list[Note] = []
    records = plan_records(snapshot)
    dropped = _dropped_torrents(snapshot.blackhole) if policy.submit_blackhole else {}
    desired = plan_desires(snapshot, records, dropped)
    actions: list[Action] = [*records, *desired]
    if policy.submit_blackhole:
        pending_desires = {action.info_hash: action.key for action in desired}
        taken = frozenset(action.dropped[0] for action in desired if action.dropped)
        actions += _plan_blackhole(snapshot, notes, pending_desires, records, taken)
    fetches: list[Download] = []
    adopted: list[AdoptLocal] = []
    placements: list[PlaceItem] = []
    if policy.download and snapshot.local.not_mounted is not None:
        notes.append(_not_mounted_note(snapshot.local.not_mounted))
        policy = replace(policy, download=False)  # nothing is written there, nor deleted
    if policy.download:
        fetches, adopted = plan_downloads(snapshot, policy, tree, notes, now)
        held = held_ids(snapshot, tree)  # paused or removed by an RPC client
        fetches = in_queue_order(
            [action for action in fetches if action.file_id not in held], snapshot, tree
        )
        adopted = [action for action in adopted if action.file_id not in held]
        pending = Pending.of(fetches, adopted)
        placements = [
            action
            for action in plan_placements(snapshot, policy, tree, pending)
            if action.item_id not in held
        ]
    else:
        pending = Pending.of([], [])
    actions += [*fetches, *adopted, *placements]
    actions += plan_removed_transfers(snapshot)
    actions += _plan_cancels(snapshot, policy, now)
    actions += _plan_clean(snapshot, policy, tree, pending.keys, notes)
    notes += _left_alone(snapshot, policy)
    if policy.delete_remote_after_download and policy.download:
        actions += plan_deletes(snapshot, policy, tree, pending, placements)
    if policy.delete_remote_on_rpc_remove:
        planned = {action.key for action in actions}
        actions += [item for item in plan_purges(snapshot, tree) if item.key not in planned]
    if policy.download:
        actions += _plan_tidying(snapshot, policy, tree, now, pending, placements)
    return Plan(
        tuple(actions), tuple(notes), len(snapshot.settling) if policy.submit_blackhole else 0
    )


def _not_mounted_note(why: str) -> Note:
    return Note(
        "needs_you",
        f"{why}: nothing is downloaded or deleted on put.io until it is back",
        "is its disk mounted? (a disk not mounted leaves an empty folder of the system disk "
        "where it should be, and files put there vanish under it once it is); if it moved, "
        "point paths.downloads at it; if you emptied it on purpose, make its staging folder "
        "again (paths.staging; .putio-mirror-staging in it by default)",
    )


def _plan_tidying(
    snapshot: Snapshot,
    policy: Policy,
    tree: RemoteTree,
    now: datetime,
    pending: Pending,
    placements: list[PlaceItem],
) -> list[Action]:
    """What staging holds of items RPC clients removed goes at once; other leftovers after
    the grace period."""
    leftovers: list[Action] = [*plan_removed_leftovers(snapshot, removed_ids(snapshot, tree))]
    tidied = {action.key for action in leftovers}
    later = plan_tidy(snapshot, policy, tree, now, pending, placements)
    return leftovers + [action for action in later if action.key not in tidied]


def _plan_blackhole(
    snapshot: Snapshot,
    notes: list[Note],
    pending_desires: Mapping[str, str],
    records: Iterable[RecordTransfer],
    taken: frozenset[str],
) -> list[Action]:
    # A submission without a transfer id was only attempted: put.io's answer never came.
    # If put.io has the transfer, it was created (archive; it is ours); if not, submit again.
    submitted = submitted_ids(snapshot.journal)
    # ours too: the transfers this plan records (``plan_records``), once that is done
    recorded = {record.info_hash: record for record in records}
    ours = submitted | {key: record.transfer_id for key, record in recorded.items()}
    on_putio = transfers_by_hash(snapshot.transfers, ours)
    # A torrent an RPC client asked for in this same plan is submitted once, by the desire.
    first_key: dict[str, str] = dict(pending_desires)
    actions: list[Action] = []
    notes.extend(
        Note(
            "info",
            f"{name} in the blackhole changed a moment ago (it may still be being "
            "written): the next run takes it",
        )
        for name in snapshot.settling
    )
    notes.extend(_unseen_notes(snapshot))
    for item in _in_submission_order(snapshot.blackhole):
        if item.path in taken:  # a desire's submission takes it (``plan_desires``)
            continue
        info_hash = item.info_hash
        magnet = on_putio.get(info_hash or "")
        if item.problem is not None or info_hash is None:
            actions.append(RejectBlackholeFile(item.path, item.name, item.problem or "unusable"))
        elif info_hash in first_key:
            requires = (first_key[info_hash],)
            why = "same torrent as another file in this scan or an RPC request"
            actions.append(ArchiveDuplicate(item.path, item.name, info_hash, why, requires))
        elif (replaced := _magnet_to_replace(item, magnet, ours)) is not None:
            replacing = _in_place_of_magnet(item, info_hash, replaced, recorded)
            first_key[info_hash] = replacing.key
            actions.append(replacing)
        elif info_hash in submitted or magnet is not None:
            earlier = info_hash in submitted
            actions.append(_duplicate(item, info_hash, magnet, ours, earlier, notes))
        else:
            action = _submit(item, info_hash)
            first_key[info_hash] = action.key
            actions.append(action)
    return actions


def _dropped_torrents(items: Iterable[BlackholeItem]) -> dict[str, BlackholeItem]:
    """Given the blackhole's files, return the usable .torrent of each info-hash (the
    first in submission order): a magnet desire of that hash takes it."""
    found: dict[str, BlackholeItem] = {}
    for item in _in_submission_order(items):
        if item.problem is None and item.info_hash is not None and item.kind == "torrent":
            found.setdefault(item.info_hash, item)
    return found


def _magnet_to_replace(
    item: BlackholeItem, transfer: Transfer | None, ours: Mapping[str, int]
) -> Transfer | None:
    """Given a blackhole file, its torrent's transfer on put.io and the transfers that are
    ours, return that transfer if the file is a .torrent dropped after its magnet was
    submitted (in an earlier pass) and put.io has fetched nothing of it: the .torrent goes
    in its place, as over RPC (``core/desired``); a private torrent as a magnet usually
    never starts, the .torrent carries its trackers and metadata. Else None."""
    if item.kind != "torrent" or transfer is None or has_started(transfer):
        return None
    return transfer if magnet_of_ours(item.info_hash or "", transfer, ours) else None


def _in_place_of_magnet(
    item: BlackholeItem, info_hash: str, magnet: Transfer, recorded: Mapping[str, RecordTransfer]
) -> SubmitTorrent:
    """The submission of a .torrent in its magnet's place; it waits for the magnet
    transfer's record when this plan records it (a run stopped mid-replacement forgot
    the transfer: ``app/requested.make_way``)."""
    record = recorded.get(info_hash)
    requires = (record.key,) if record is not None else ()
    why = in_place_of_magnet(magnet)
    return SubmitTorrent(
        item.path,
        item.name,
        info_hash,
        why,
        requires,
        replaces=magnet.id,
        replaced_uri=magnet.source or "",
    )


def _duplicate(
    item: BlackholeItem,
    info_hash: str,
    transfer: Transfer | None,
    ours: Mapping[str, int],
    earlier: bool,
    notes: list[Note],
) -> ArchiveDuplicate:
    """Given a blackhole file of a torrent on put.io or submitted (``earlier``: with its
    transfer journaled), file it away and say so; a .torrent whose magnet put.io started
    is told apart: it is never sent, a torrent under way is not sent twice."""
    if item.kind == "torrent" and transfer and magnet_of_ours(info_hash, transfer, ours):
        why = f"put.io started this torrent from its magnet ({transfer.status})"
        line = f"{item.name}: {why}: the .torrent is not sent, the magnet goes on"
    else:
        why = "submitted earlier" if earlier else "already on put.io"
        line = f"{item.name}: this torrent was {why}; not adding it again"
    notes.append(Note("warning", line))
    return ArchiveDuplicate(item.path, item.name, info_hash, why=why)


def _in_submission_order(items: Iterable[BlackholeItem]) -> list[BlackholeItem]:
    """Given blackhole files, return them by name, except that of the files of one
    torrent a .torrent comes first, where the first of them by name stood: the first of
    an info-hash is the one submitted, the others filed away as duplicates of it.

    A .torrent carries what a magnet lacks (its trackers, the metadata itself, the
    private flag): a private torrent added as a magnet usually never starts on put.io,
    which has no DHT for it. Sonarr retrying a grab with a magnet, or a person dropping
    both, must not have the magnet win because ``.magnet`` sorts before ``.torrent``."""
    by_name = sorted(items, key=lambda entry: entry.name)
    first_at: dict[str, int] = {}
    for position, item in enumerate(by_name):
        if item.problem is None and item.info_hash is not None:
            first_at.setdefault(item.info_hash, position)

    def place(entry: tuple[int, BlackholeItem]) -> tuple[int, bool, int]:
        position, item = entry
        if item.problem is not None or item.info_hash is None:
            return position, False, position
        return first_at[item.info_hash], item.kind != "torrent", position

    return [item for _, item in sorted(enumerate(by_name), key=place)]


def plan_records(snapshot: Snapshot) -> list[RecordTransfer]:
    """Given the world, return a record for every submission of ours whose answer was lost
    (journaled as attempted, with no transfer) that put.io shows as a transfer now: only
    our own attempt is ever matched, so a transfer added by hand is never taken as ours."""
    attempted = {
        info_hash
        for info_hash, entry in snapshot.journal.submissions.items()
        if entry.transfer_id is None
    }
    return [
        RecordTransfer(transfer.hash, transfer.id, transfer.name)
        for transfer in snapshot.transfers
        if transfer.hash in attempted
    ]


#: how many files nested too deep one note names
_NAMED_AT_MOST = 5
_WHERE_TO_DROP = "drop .torrent and .magnet files directly into the blackhole or one folder below"


def _unseen_notes(snapshot: Snapshot) -> list[Note]:
    """What the blackhole holds that is never taken: only a person can move it, so every
    run that finds it says so (``needs you``, exit 11; ``status`` too), never just a log
    line a file would wait forever behind."""
    notes = [
        Note(
            "needs_you",
            f"blackhole folder {name} is not looked into, nothing in it taken: {why}",
            f"or {_WHERE_TO_DROP}",
        )
        for name, why in snapshot.skipped_folders
    ]
    deep = snapshot.too_deep
    if deep:
        named = ", ".join(deep[:_NAMED_AT_MOST])
        more = f" and {len(deep) - _NAMED_AT_MOST} more" if len(deep) > _NAMED_AT_MOST else ""
        files = "file" if len(deep) == 1 else "files"
        message = f"{len(deep)} blackhole {files} nested too deep, not taken: {named}{more}"
        notes.append(Note("needs_you", message, _WHERE_TO_DROP))
    return notes


def _submit(item: BlackholeItem, info_hash: str) -> SubmitTorrent | SubmitMagnet:
    if item.kind == "magnet" and item.magnet_uri:
        return SubmitMagnet(item.path, item.name, info_hash, item.magnet_uri)
    return SubmitTorrent(item.path, item.name, info_hash)


def _is_ours(transfer: Transfer, snapshot: Snapshot, policy: Policy) -> bool:
    if policy.manage_foreign_transfers:
        return True
    journal = snapshot.journal
    return added_by_us(transfer, journal.submissions, journal.own_transfer_ids)


def _plan_cancels(snapshot: Snapshot, policy: Policy, now: datetime) -> list[Action]:
    if not policy.cancel_seeding:
        return []
    return [
        CancelTransfer(transfer.id, transfer.name, why=_seeding_reason(transfer, policy, now))
        for transfer in sorted(snapshot.transfers, key=lambda entry: entry.id)
        if transfer.is_seeding
        and _is_ours(transfer, snapshot, policy)
        and _seeded_enough(transfer, snapshot, policy, now)
    ]


def _left_alone(snapshot: Snapshot, policy: Policy) -> list[Note]:
    """Name the transfers grooming would cancel or clean were they ours: else a person sees
    them seeding on put.io and is told all is in step. A reminder: never mailed by a timer."""
    if policy.manage_foreign_transfers:
        return []
    named = [
        f"{transfer.name} ({'seeding' if transfer.is_seeding else 'finished'})"
        for transfer in sorted(snapshot.transfers, key=lambda entry: entry.id)
        if not _is_ours(transfer, snapshot, policy)
        and (
            (policy.cancel_seeding and transfer.is_seeding)
            or (policy.clean_finished and transfer.status == "COMPLETED")
        )
    ]
    if not named:
        return []
    listed = ", ".join(named[:_NAMED_AT_MOST])
    more = f" and {len(named) - _NAMED_AT_MOST} more" if len(named) > _NAMED_AT_MOST else ""
    one = len(named) == 1
    message = (
        f"{len(named)} {'transfer' if one else 'transfers'} putio-mirror did not add "
        f"{'is left as it is' if one else 'are left as they are'}: {listed}{more}; "
        f"transfers.manage_foreign: true grooms {'it' if one else 'them'} too"
    )
    return [Note("reminder", message)]


def _seeding_hours(transfer: Transfer, now: datetime) -> float:
    """put.io's own counter when it gives one, else the time since the transfer finished."""
    if transfer.seconds_seeding is not None:
        return transfer.seconds_seeding / SECONDS_PER_HOUR
    if transfer.finished_at is not None:
        return max(0.0, (now - transfer.finished_at).total_seconds() / SECONDS_PER_HOUR)
    return 0.0


def _seeded_enough(transfer: Transfer, snapshot: Snapshot, policy: Policy, now: datetime) -> bool:
    """Seeding stops after the configured hours, or earlier once the ratio is reached;
    limits an RPC client set for this torrent (``torrent-set``) replace those."""
    desire = desire_of(transfer, snapshot.journal.desires)
    if desire is not None and has_seed_limits(desire):
        return seeded_enough_for(desire, transfer)
    if _seeding_hours(transfer, now) >= policy.seeding_min_hours:
        return True
    ratio = transfer.current_ratio
    return (
        policy.seeding_min_ratio is not None
        and ratio is not None
        and (ratio >= policy.seeding_min_ratio)
    )


def _seeding_reason(transfer: Transfer, policy: Policy, now: datetime) -> str:
    if policy.seeding_min_hours <= 0 and policy.seeding_min_ratio is None:
        return "seeding"
    hours = _seeding_hours(transfer, now)
    return f"seeding for {hours:.1f} h, ratio {transfer.current_ratio or 0:.2f}"


def _plan_clean(
    snapshot: Snapshot,
    policy: Policy,
    tree: RemoteTree,
    pending: Mapping[int, str],
    notes: list[Note],
) -> list[Action]:
    """Clean finished transfers whose files are mirrored (or will be, earlier in this plan)."""
    if not policy.clean_finished:
        return []
    ids: list[int] = []
    names: list[str] = []
    requires: set[str] = set()
    for transfer in sorted(snapshot.transfers, key=lambda entry: entry.id):
        if transfer.status != "COMPLETED" or not _is_ours(transfer, snapshot, policy):
            continue
        removed = (transfer.hash or "") in snapshot.journal.removed_desires
        # An RPC client removed it: what was not mirrored by then never will be.
        waits = (
            set() if removed else _mirror_requirements(transfer, policy, tree, pending, snapshot)
        )
        if waits is None:
            notes.append(
                Note("info", f"transfer {transfer.name}: not cleaned until it is mirrored")
            )
            continue
        ids.append(transfer.id)
        names.append(transfer.name)
        requires.update(waits)
    if not ids:
        return []
    return [CleanTransfers(tuple(ids), tuple(names), requires=tuple(sorted(requires)))]


def _mirror_requirements(
    transfer: Transfer,
    policy: Policy,
    tree: RemoteTree,
    pending: Mapping[int, str],
    snapshot: Snapshot,
) -> set[str] | None:
    """Return the action keys the transfer's files wait on; None if they can't be mirrored now."""
    if not policy.download or transfer.file_id is None or transfer.file_id not in tree.by_id:
        return set()  # nothing of it left to mirror: cleaning loses nothing
    if transfer.file_id not in tree.paths:
        return None  # outside the mirrored folder: not ours to judge
    return requirements_for_item(transfer.file_id, tree, pending, snapshot)


def safety_violations(plan: Plan, snapshot: Snapshot, policy: Policy) -> list[str]:
    """Given a plan, return why it is too destructive to run without ``--force`` (empty: fine)."""
    limits = policy.limits
    problems: list[str] = []
    cancels = plan.count("cancel")
    cleans = sum(len(action.transfer_ids) for action in plan if isinstance(action, CleanTransfers))
    deletes = plan.count("delete")
    if cancels > limits.max_cancels:
        problems.append(f"it would cancel {cancels} transfers (limit {limits.max_cancels})")
    if cleans > limits.max_cleans:
        problems.append(f"it would clean {cleans} transfers (limit {limits.max_cleans})")
    if deletes > limits.max_remote_deletes:
        problems.append(
            f"it would delete {deletes} items on put.io (limit {limits.max_remote_deletes})"
        )
    remote_files = sum(1 for item in snapshot.files if not item.is_folder)
    known = sum(1 for record in snapshot.journal.downloads.values() if record.is_verified)
    destructive = cancels + cleans + deletes
    if remote_files == 0 and known >= limits.vanished_threshold and destructive:
        problems.append(
            f"put.io lists no files at all while the journal knows {known} mirrored files"
        )
    return problems
