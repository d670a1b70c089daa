"""The reconciler: table tests for each rule, and hypothesis properties for the whole."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from putio_mirror.core.attention import needs_attention
from putio_mirror.core.plan import (
    AdoptLocal,
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    DeleteRemote,
    Download,
    PlaceItem,
    Plan,
    RecordTransfer,
    RejectBlackholeFile,
    SubmitMagnet,
    SubmitTorrent,
    TidyStaging,
)
from putio_mirror.core.reconcile import reconcile, safety_violations
from putio_mirror.core.state import (
    BlackholeItem,
    DownloadRecord,
    Filters,
    JournalFacts,
    LocalFacts,
    Policy,
    RemoteFile,
    SafetyLimits,
    Snapshot,
    StagedEntry,
    Submission,
    Transfer,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HASH_A = "a" * 40
HASH_B = "b" * 40
HASH_C = "c" * 40


def folder(file_id: int, name: str, parent: int = 0, kind: str = "REGULAR") -> RemoteFile:
    return RemoteFile(file_id, name, parent, 0, True, None, kind)


def file(file_id: int, name: str, parent: int = 0, size: int = 10) -> RemoteFile:
    return RemoteFile(file_id, name, parent, size, False, f"{file_id:08x}")


def verified(file_id: int, path: str = "x", size: int = 10) -> DownloadRecord:
    """A file verified and placed: mirrored."""
    return DownloadRecord(file_id, path, size, f"{file_id:08x}", size, NOW, path, NOW)


def in_staging(file_id: int, path: str = "x", size: int = 10) -> DownloadRecord:
    """A file verified whose bytes wait in staging to be placed."""
    return DownloadRecord(file_id, path, size, f"{file_id:08x}", size, NOW)


def facts(
    submissions: Mapping[str, int | None] | None = None,
    downloads: list[DownloadRecord] | None = None,
) -> JournalFacts:
    subs = {h: Submission(h, tid, h[:4], NOW) for h, tid in (submissions or {}).items()}
    return JournalFacts(
        MappingProxyType(subs),
        MappingProxyType({record.file_id: record for record in downloads or []}),
        frozenset(tid for tid in (s.transfer_id for s in subs.values()) if tid is not None),
    )


def torrent(name: str, info_hash: str | None, problem: str | None = None) -> BlackholeItem:
    return BlackholeItem(f"/bh/{name}", name, "torrent", 100, info_hash, name, None, problem)


def magnet(name: str, info_hash: str | None, problem: str | None = None) -> BlackholeItem:
    uri = None if info_hash is None else f"magnet:?xt=urn:btih:{info_hash}"
    return BlackholeItem(f"/bh/{name}", name, "magnet", 60, info_hash, name, uri, problem)


def test_new_torrent_and_magnet_are_submitted_and_bad_file_rejected() -> None:
    magnet = BlackholeItem("/bh/m.magnet", "m.magnet", "magnet", 60, HASH_B, "m", "magnet:?x")
    snapshot = Snapshot(
        blackhole=(
            torrent("a.torrent", HASH_A),
            magnet,
            torrent("bad.torrent", None, "not bencoded"),
        )
    )
    plan = reconcile(snapshot, Policy(), NOW)
    assert [type(action) for action in plan] == [SubmitTorrent, RejectBlackholeFile, SubmitMagnet]
    assert plan.actions[0].key == f"upload:{HASH_A}"
    assert plan.actions[2].key == f"magnet:{HASH_B}"


def test_torrent_dropped_again_under_another_name_is_never_submitted_twice() -> None:
    snapshot = Snapshot(blackhole=(torrent("again.torrent", HASH_A),), journal=facts({HASH_A: 7}))
    plan = reconcile(snapshot, Policy(), NOW)
    assert [type(action) for action in plan] == [ArchiveDuplicate]
    assert any("not adding it again" in note.message for note in plan.notes)


def test_two_copies_in_one_scan_submit_once_and_archive_the_other_after_it() -> None:
    snapshot = Snapshot(blackhole=(torrent("a.torrent", HASH_A), torrent("b.torrent", HASH_A)))
    submit, archive = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(submit, SubmitTorrent) and isinstance(archive, ArchiveDuplicate)
    assert archive.requires == (submit.key,)


def test_of_one_torrent_s_files_in_one_scan_the_torrent_is_submitted_where_the_first_stood() -> (
    None
):
    """``Show.magnet`` sorts before ``Show.torrent``; the torrent carries the trackers and
    the private flag a magnet lacks, so it is the one submitted."""
    snapshot = Snapshot(
        blackhole=(
            torrent("z.torrent", HASH_B),
            magnet("Show.magnet", HASH_A),
            torrent("a.torrent", HASH_C),
            torrent("Show.torrent", HASH_A),
            magnet("Show (retry).magnet", HASH_A),
        )
    )
    plan = reconcile(snapshot, Policy(), NOW)
    assert [(type(action), action.name) for action in plan] == [
        (SubmitTorrent, "Show.torrent"),
        (ArchiveDuplicate, "Show (retry).magnet"),
        (ArchiveDuplicate, "Show.magnet"),
        (SubmitTorrent, "a.torrent"),
        (SubmitTorrent, "z.torrent"),
    ]
    assert all(action.requires == (f"upload:{HASH_A}",) for action in plan.actions[1:3])


def test_a_magnet_of_a_torrent_submitted_earlier_or_asked_for_keeps_the_torrent_out() -> None:
    """Within one scan the .torrent comes first; a hash submitted earlier (its transfer
    gone from put.io, or not made of a magnet) is never submitted again, whichever file
    brings it."""
    snapshot = Snapshot(
        blackhole=(magnet("Show.magnet", HASH_A), torrent("Show.torrent", HASH_A)),
        journal=facts({HASH_A: 7}),
    )
    plan = reconcile(snapshot, Policy(), NOW)
    assert [type(action) for action in plan] == [ArchiveDuplicate, ArchiveDuplicate]


def magnet_of(transfer_id: int, info_hash: str, status: str, percent_done: int = 0) -> Transfer:
    source = f"magnet:?xt=urn:btih:{info_hash}"
    return Transfer(transfer_id, "t", status, info_hash, percent_done=percent_done, source=source)


def test_a_torrent_dropped_after_its_magnet_replaces_its_transfer_until_put_io_fetches() -> None:
    """As over RPC (``core/desired``): a .torrent dropped in a later pass than its magnet
    takes the place of the magnet's transfer, ours, while put.io has fetched nothing of
    it; else it is a duplicate, and one of a magnet put.io started is said so."""
    hashes = [f"{n:x}" * 40 for n in range(1, 8)]
    transfers = (
        magnet_of(1, hashes[0], "IN_QUEUE"),
        magnet_of(2, hashes[1], "PREPARING_DOWNLOAD"),
        magnet_of(3, hashes[2], "ERROR"),
        magnet_of(4, hashes[3], "DOWNLOADING", percent_done=10),
        magnet_of(5, hashes[4], "WAITING", percent_done=3),  # fetched some already
        Transfer(6, "t", "IN_QUEUE", hashes[5]),  # sent as a .torrent already
        magnet_of(7, hashes[6], "IN_QUEUE"),  # added by hand on put.io: not ours
    )
    ours = {t.hash or "": t.id for t in transfers if t.id != 7}
    dropped = tuple(torrent(f"{n}.torrent", info_hash) for n, info_hash in enumerate(hashes, 1))
    snapshot = Snapshot(blackhole=dropped, transfers=transfers, journal=facts(ours))
    plan = reconcile(snapshot, Policy(cancel_seeding=False), NOW)
    assert [(type(a), getattr(a, "replaces", None)) for a in plan if a.kind != "clean"] == [
        (SubmitTorrent, 1),
        (SubmitTorrent, 2),
        (SubmitTorrent, 3),
        (ArchiveDuplicate, None),
        (ArchiveDuplicate, None),
        (ArchiveDuplicate, None),
        (ArchiveDuplicate, None),
    ]
    assert [note.message for note in plan.notes if note.level == "warning"] == [
        "4.torrent: put.io started this torrent from its magnet (DOWNLOADING): the .torrent "
        "is not sent, the magnet goes on",
        "5.torrent: put.io started this torrent from its magnet (WAITING): the .torrent "
        "is not sent, the magnet goes on",
        "6.torrent: this torrent was submitted earlier; not adding it again",
        "7.torrent: this torrent was already on put.io; not adding it again",
    ]


def test_a_torrent_and_its_magnet_dropped_again_archive_the_magnet_after_the_replacement() -> None:
    dropped = (magnet("Show.magnet", HASH_A), torrent("Show.torrent", HASH_A))
    snapshot = Snapshot(
        blackhole=dropped, transfers=(magnet_of(1, HASH_A, "IN_QUEUE"),), journal=facts({HASH_A: 1})
    )
    submit, archive = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(submit, SubmitTorrent) and submit.replaces == 1
    assert isinstance(archive, ArchiveDuplicate) and archive.requires == (submit.key,)


def test_which_transfer_a_torrent_replaces_does_not_hang_on_put_io_s_listing_order() -> None:
    """Two transfers of one info-hash (one ours, of the magnet): the .torrent takes the
    place of ours in either order put.io lists them (found by the property test below)."""
    other = Transfer(1, "t1", "IN_QUEUE", HASH_A)
    ours = magnet_of(2, HASH_A, "IN_QUEUE")
    for listed in ((other, ours), (ours, other)):
        snapshot = Snapshot(
            blackhole=(torrent("Show.torrent", HASH_A),),
            transfers=listed,
            journal=facts({HASH_A: 2}),
        )
        (submit,) = reconcile(snapshot, Policy(), NOW).actions
        assert isinstance(submit, SubmitTorrent) and submit.replaces == 2, listed


def test_a_replacement_stopped_after_the_journal_forgot_the_magnet_s_transfer_goes_on() -> None:
    """The journal forgot the magnet's transfer (attempted again), a kill came before the
    cancel: this plan records that transfer as ours again and, after that, replaces it."""
    snapshot = Snapshot(
        blackhole=(torrent("Show.torrent", HASH_A),),
        transfers=(magnet_of(1, HASH_A, "IN_QUEUE"),),
        journal=facts({HASH_A: None}),
    )
    record, submit = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(record, RecordTransfer) and record.transfer_id == 1
    assert isinstance(submit, SubmitTorrent) and submit.replaces == 1
    assert submit.requires == (record.key,)


def test_a_transfer_an_unanswered_submission_made_is_recorded_and_one_added_by_hand_never() -> None:
    """Our attempt (journaled with no transfer) found on put.io is journaled as ours, else
    the torrent would be submitted again once the transfer is cleaned; a transfer added by
    hand (no attempt of ours) or one already known is left alone."""
    lost = Transfer(1, "lost answer", "DOWNLOADING", HASH_A)
    by_hand = Transfer(2, "by hand", "DOWNLOADING", HASH_B)
    known = Transfer(3, "known", "DOWNLOADING", HASH_C)
    journal = facts({HASH_A: None, HASH_C: 3})
    snapshot = Snapshot(transfers=(lost, by_hand, known), journal=journal)
    records = [action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "record"]
    assert records == [RecordTransfer(HASH_A, 1, "lost answer")]


def test_seeding_transfer_of_ours_is_cancelled_and_foreign_one_left_alone() -> None:
    ours = Transfer(1, "ours", "SEEDING", HASH_A, seconds_seeding=10)
    foreign = Transfer(2, "foreign", "SEEDING", HASH_B, seconds_seeding=10)
    snapshot = Snapshot(transfers=(ours, foreign), journal=facts({HASH_A: 1}))
    plan = reconcile(snapshot, Policy(), NOW)
    assert [action.key for action in plan] == ["cancel:1"]
    plan_all = reconcile(snapshot, Policy(manage_foreign_transfers=True), NOW)
    assert [action.key for action in plan_all] == ["cancel:1", "cancel:2"]


def test_transfers_left_alone_as_not_ours_are_told_to_a_person_not_passed_over_in_silence() -> None:
    # "Nothing to do: in step" while put.io shows a transfer seeding leaves a user in the
    # dark: the transfers grooming would have touched, were they ours, are named once
    ours = Transfer(1, "ours", "SEEDING", HASH_A, seconds_seeding=10)
    seeding = Transfer(2, "Seeding.By.Hand", "SEEDING", HASH_B, seconds_seeding=10)
    finished = Transfer(3, "Finished.By.Hand", "COMPLETED", HASH_C)
    busy = Transfer(4, "Busy.By.Hand", "DOWNLOADING", "d" * 40)
    snapshot = Snapshot(transfers=(ours, seeding, finished, busy), journal=facts({HASH_A: 1}))
    (note,) = reconcile(snapshot, Policy(), NOW).notes
    assert note.level == "reminder"  # to a person running by hand; never mailed by a timer
    assert "2 transfers" in note.message and "manage_foreign" in note.message
    assert "Seeding.By.Hand (seeding)" in note.message
    assert "Finished.By.Hand (finished)" in note.message and "Busy" not in note.message
    assert not reconcile(snapshot, Policy(manage_foreign_transfers=True), NOW).notes
    neither = Policy(cancel_seeding=False, clean_finished=False)
    assert not reconcile(snapshot, neither, NOW).notes, "not groomed by choice: nothing to tell"
    only_cancel = Policy(clean_finished=False)
    (note,) = reconcile(snapshot, only_cancel, NOW).notes
    assert "1 transfer " in note.message and "Finished" not in note.message


def test_seeding_continues_until_hours_or_ratio_reached() -> None:
    young = Transfer(1, "young", "SEEDING", HASH_A, seconds_seeding=3600, current_ratio=0.5)
    policy = Policy(seeding_min_hours=24, seeding_min_ratio=1.0, manage_foreign_transfers=True)
    assert not reconcile(Snapshot(transfers=(young,)), policy, NOW).actions
    ratio_met = replace(young, current_ratio=1.2)
    assert reconcile(Snapshot(transfers=(ratio_met,)), policy, NOW).count("cancel") == 1


def test_new_remote_files_are_downloaded_with_their_folder_structure() -> None:
    tree = (folder(1, "Show"), folder(2, "S01", 1), file(3, "e1.mkv", 2, 500))
    plan = reconcile(Snapshot(files=tree), Policy(item_placement=False), NOW)
    assert plan.actions == (Download(3, "Show/S01/e1.mkv", 500, "00000003"),)


def test_new_folder_item_is_built_in_staging_and_placed_whole_after_its_downloads() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1), file(3, "e2.mkv", 1), file(4, "loose.mkv"))
    e1, e2, loose, place = reconcile(Snapshot(files=tree), Policy(), NOW).actions
    assert isinstance(e1, Download) and e1.staged and isinstance(e2, Download) and e2.staged
    assert isinstance(loose, Download) and not loose.staged, "a top-level file is its own item"
    files = ((2, "Show/e1.mkv"), (3, "Show/e2.mkv"))
    assert place == PlaceItem("Show", 1, files, requires=("download:2", "download:3"))


def test_item_already_in_the_download_folder_gets_new_files_placed_one_by_one() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1), file(3, "e9.mkv", 1))
    local = LocalFacts(present_items=frozenset({"Show"}))
    snapshot = Snapshot(files=tree, journal=facts(downloads=[verified(2)]), local=local)
    assert reconcile(snapshot, Policy(), NOW).actions == (
        Download(3, "Show/e9.mkv", 10, "00000003"),
    )


def test_staged_item_left_by_an_interrupted_run_is_placed_once_complete() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1))
    local = LocalFacts(verified={2: 10})
    snapshot = Snapshot(files=tree, journal=facts(downloads=[in_staging(2)]), local=local)
    assert reconcile(snapshot, Policy(), NOW).actions == (
        PlaceItem("Show", 1, ((2, "Show/e1.mkv"),)),
    )
    placed = Snapshot(files=tree, journal=facts(downloads=[verified(2)]))
    assert reconcile(placed, Policy(), NOW).actions == ()


def test_item_placed_half_way_gets_its_remaining_verified_files_placed() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1), file(3, "e2.mkv", 1))
    local = LocalFacts(present_items=frozenset({"Show"}), verified={3: 10})
    journal = facts(downloads=[verified(2), in_staging(3)])
    plan = reconcile(Snapshot(files=tree, journal=journal, local=local), Policy(), NOW)
    assert plan.actions == (PlaceItem("Show", 1, ((3, "Show/e2.mkv"),), folder=False),)


def test_verified_bytes_lost_from_staging_are_downloaded_again() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1))
    snapshot = Snapshot(files=tree, journal=facts(downloads=[in_staging(2)]))
    e1, place = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(e1, Download) and e1.staged and isinstance(place, PlaceItem)


def test_folder_renamed_on_put_io_places_its_verified_files_under_the_new_name() -> None:
    tree = (folder(1, "Show (renamed)"), file(2, "e1.mkv", 1), file(3, "e2.mkv", 1))
    journal = facts(downloads=[in_staging(2, "Show/e1.mkv")])
    local = LocalFacts(verified={2: 10}, partial={3: 4})
    e2, place = reconcile(Snapshot(files=tree, journal=journal, local=local), Policy(), NOW)
    assert isinstance(e2, Download) and e2.resume_from == 4
    assert place == PlaceItem(
        "Show (renamed)",
        1,
        ((2, "Show (renamed)/e1.mkv"), (3, "Show (renamed)/e2.mkv")),
        requires=("download:3",),
    )


def test_folder_renamed_after_files_of_it_were_placed_takes_new_files_where_it_is() -> None:
    tree = (folder(1, "Show (renamed)"), file(2, "e1.mkv", 1), file(3, "e2.mkv", 1))
    journal = facts(downloads=[verified(2, "Show/e1.mkv")])
    local = LocalFacts(present_items=frozenset({"Show"}))
    plan = reconcile(Snapshot(files=tree, journal=journal, local=local), Policy(), NOW)
    assert plan.actions == (Download(3, "Show/e2.mkv", 10, "00000003"),)


def test_renamed_folder_whose_old_name_another_item_took_keeps_its_new_name() -> None:
    renamed = (folder(1, "Show (renamed)"), file(2, "e1.mkv", 1), file(3, "e2.mkv", 1))
    tree = (*renamed, folder(4, "Show"), file(5, "x.mkv", 4))
    journal = facts(downloads=[verified(2, "Show/e1.mkv")])
    local = LocalFacts(present_items=frozenset({"Show"}))
    plan = reconcile(Snapshot(files=tree, journal=journal, local=local), Policy(), NOW)
    targets = [action.target for action in plan.actions]
    assert targets == ["Show (renamed)/e2.mkv", "Show/x.mkv", "Show (renamed)"]


def test_placed_file_replaced_on_put_io_is_downloaded_to_replace_it_if_still_ours() -> None:
    tree = (folder(1, "Show"), file(3, "e1.mkv", 1, size=12))
    old = verified(2, "Show/e1.mkv")
    journal = facts(downloads=[old])
    ours = LocalFacts(present={"Show/e1.mkv": 10}, present_items=frozenset({"Show"}))
    plan = reconcile(Snapshot(files=tree, journal=journal, local=ours), Policy(), NOW)
    (download,) = plan.actions
    assert isinstance(download, Download) and download.replaces == old and not plan.notes
    changed = replace(ours, present={"Show/e1.mkv": 11})  # not the size placed: a stranger's
    plan = reconcile(Snapshot(files=tree, journal=journal, local=changed), Policy(), NOW)
    assert plan.actions == () and [note.level for note in plan.notes] == ["needs_you"]


def test_placed_file_replaced_by_the_same_bytes_under_a_new_id_is_adopted() -> None:
    tree = (folder(1, "Show"), file(3, "e1.mkv", 1))
    old = replace(verified(2, "Show/e1.mkv"), crc32="00000003")
    ours = LocalFacts(present={"Show/e1.mkv": 10}, present_items=frozenset({"Show"}))
    snapshot = Snapshot(files=tree, journal=facts(downloads=[old]), local=ours)
    (adopt,) = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(adopt, AdoptLocal) and adopt.file_id == 3


def test_file_that_failed_waits_longer_after_each_failure() -> None:
    record = replace(in_staging(3, "m.mkv"), verified_at=None, failures=3, last_failure_at=NOW)
    snapshot = Snapshot(files=(file(3, "m.mkv"),), journal=facts(downloads=[record]))
    plan = reconcile(snapshot, Policy(retry_after_failure_minutes=10), NOW + timedelta(minutes=39))
    assert plan.actions == () and "failed 3 time(s)" in plan.notes[0].message
    later = reconcile(snapshot, Policy(retry_after_failure_minutes=10), NOW + timedelta(minutes=40))
    assert later.count("download") == 1


def test_item_of_a_transfer_still_completing_is_neither_placed_nor_deleted() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1))
    completing = Transfer(5, "Show", "COMPLETING", HASH_A, file_id=1)
    snapshot = Snapshot(
        transfers=(completing,),
        files=tree,
        journal=facts({HASH_A: 5}, [in_staging(2)]),
        local=LocalFacts(verified={2: 10}),
    )
    assert reconcile(snapshot, Policy(delete_remote_after_download=True), NOW).actions == ()


def test_remote_delete_waits_for_the_item_to_be_placed_not_only_verified() -> None:
    tree = (folder(1, "Show"), file(2, "e1.mkv", 1))
    journal = facts(downloads=[in_staging(2)])
    snapshot = Snapshot(files=tree, journal=journal, local=LocalFacts(verified={2: 10}))
    place, delete = reconcile(snapshot, Policy(delete_remote_after_download=True), NOW).actions
    assert isinstance(place, PlaceItem) and delete == DeleteRemote(1, "Show", requires=(place.key,))
    lost = Snapshot(files=tree, journal=journal)  # verified, but not in staging any more
    fetch, place, delete = reconcile(lost, Policy(delete_remote_after_download=True), NOW)
    assert isinstance(fetch, Download) and place.requires == (fetch.key,)
    assert delete.requires == (place.key,)


def test_staging_leftovers_of_files_gone_from_put_io_are_tidied_after_the_grace_period() -> None:
    old, fresh = NOW - timedelta(hours=25), NOW - timedelta(hours=1)
    staging = (
        StagedEntry("part", 8, 5, old),
        StagedEntry("verified", 9, 5, fresh),
        StagedEntry("part", 2, 5, old),
    )
    tree = (file(2, "kept.mkv"),)
    snapshot = Snapshot(files=tree, local=LocalFacts(partial={2: 5, 8: 5}, staging=staging))
    tidy = [action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "tidy"]
    assert tidy == [TidyStaging("part", 8, 5, why="gone from put.io")]
    empty = Snapshot(local=LocalFacts(staging=staging))
    assert reconcile(empty, Policy(), NOW).count("tidy") == 0, "an empty put.io is no verdict"


def test_a_sidecar_left_without_its_part_is_tidied_once_its_file_needs_no_part() -> None:
    old = NOW - timedelta(hours=25)
    staging = (StagedEntry("sidecar", 2, 5, old), StagedEntry("sidecar", 3, 5, old))
    tree = (file(2, "wanted.mkv"), file(3, "done.mkv"))
    snapshot = Snapshot(
        files=tree, journal=facts(downloads=[verified(3)]), local=LocalFacts(staging=staging)
    )
    tidy = [action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "tidy"]
    # 2's download may be writing a new one beside its new part: left until it is verified
    assert tidy == [TidyStaging("sidecar", 3, 5, why="placed already")]


def test_filters_leave_out_files_and_do_not_hold_back_cleaning() -> None:
    tree = (
        folder(1, "Movie"),
        file(2, "movie.mkv", 1, size=5000),
        file(3, "movie.nfo", 1, size=5000),
        folder(4, "Sample", 1),
        file(5, "sample.mkv", 4, size=5000),
        file(6, "tiny.txt", 1, size=3),
    )
    filters = Filters(exclude=("*.NFO",), min_size=10, skip_extras=True)
    done = Transfer(9, "Movie", "COMPLETED", HASH_A, file_id=1)
    snapshot = Snapshot(transfers=(done,), files=tree, journal=facts({HASH_A: 9}))
    policy = Policy(filters=filters, item_placement=False)
    download, clean = reconcile(snapshot, policy, NOW).actions
    assert download == Download(2, "Movie/movie.mkv", 5000, "00000002")
    assert isinstance(clean, CleanTransfers) and clean.requires == ("download:2",)
    only_mkv = Policy(filters=Filters(include=("*.mkv",)), item_placement=False)
    assert reconcile(snapshot, only_mkv, NOW).count("download") == 2
    size_only = Policy(filters=Filters(min_size=10), item_placement=False)  # no path rule
    assert reconcile(snapshot, size_only, NOW).count("download") == 3  # all but tiny.txt


def test_file_verified_earlier_and_moved_away_locally_is_not_downloaded_again() -> None:
    snapshot = Snapshot(files=(file(3, "movie.mkv"),), journal=facts(downloads=[verified(3)]))
    assert reconcile(snapshot, Policy(), NOW).actions == ()


def test_partial_download_resumes_from_bytes_in_staging() -> None:
    snapshot = Snapshot(files=(file(3, "m.mkv", size=900),), local=LocalFacts(partial={3: 300}))
    (action,) = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(action, Download) and action.resume_from == 300


def test_file_already_at_its_local_path_is_adopted_not_fetched() -> None:
    snapshot = Snapshot(files=(file(3, "m.mkv", size=9),), local=LocalFacts(present={"m.mkv": 9}))
    (action,) = reconcile(snapshot, Policy(), NOW).actions
    assert isinstance(action, AdoptLocal)


def test_different_local_file_in_the_way_is_never_overwritten() -> None:
    snapshot = Snapshot(files=(file(3, "m.mkv", size=9),), local=LocalFacts(present={"m.mkv": 4}))
    plan = reconcile(snapshot, Policy(), NOW)
    assert plan.actions == ()
    assert "not overwriting" in plan.notes[0].message


def test_shared_with_you_folder_is_not_mirrored() -> None:
    tree = (folder(1, "Items shared with you", kind="SHARED_ROOT"), file(2, "theirs.mkv", 1))
    assert reconcile(Snapshot(files=tree), Policy(), NOW).actions == ()


def test_finished_transfer_is_cleaned_only_after_its_files_are_mirrored() -> None:
    tree = (folder(10, "Item"), file(11, "a.mkv", 10), file(12, "b.mkv", 10))
    done = Transfer(5, "Item", "COMPLETED", HASH_A, file_id=10)
    snapshot = Snapshot(transfers=(done,), files=tree, journal=facts({HASH_A: 5}, [verified(11)]))
    plan = reconcile(snapshot, Policy(), NOW)
    clean = plan.actions[-1]
    assert isinstance(clean, CleanTransfers)
    assert clean.transfer_ids == (5,) and clean.requires == ("download:12",)
    mirrored = replace(snapshot, journal=facts({HASH_A: 5}, [verified(11), verified(12)]))
    assert reconcile(mirrored, Policy(), NOW).actions == (CleanTransfers((5,), ("Item",)),)


def test_delete_remote_is_off_by_default_and_waits_for_verification_when_on() -> None:
    tree = (folder(10, "Item"), file(11, "a.mkv", 10))
    snapshot = Snapshot(files=tree)
    assert reconcile(snapshot, Policy(), NOW).count("delete") == 0
    plan = reconcile(snapshot, Policy(delete_remote_after_download=True), NOW)
    delete = plan.actions[-1]
    assert isinstance(delete, DeleteRemote) and delete.requires == ("place:10",)


def test_remote_root_limits_the_mirror_to_one_folder() -> None:
    tree = (folder(1, "Keep"), file(2, "in.mkv", 1), file(3, "out.mkv", 0))
    plan = reconcile(Snapshot(files=tree), Policy(remote_root_id=1), NOW)
    assert [action.key for action in plan] == ["download:2"]
    assert plan.actions[0].target == "in.mkv"


def test_errored_transfer_is_reported_not_touched() -> None:
    failed = Transfer(9, "broken", "ERROR", HASH_A, error_message="tracker down")
    plan = reconcile(Snapshot(transfers=(failed,), journal=facts({HASH_A: 9})), Policy(), NOW)
    assert plan.actions == ()
    (said,) = needs_attention(plan, (failed,))  # the run's output says it, with a hint
    assert "broken is in ERROR: tracker down" in said.message


def test_safety_refuses_mass_cancel_and_empty_remote_with_known_files() -> None:
    seeding = tuple(Transfer(i, f"t{i}", "SEEDING", f"{i:040x}") for i in range(1, 6))
    policy = Policy(manage_foreign_transfers=True, limits=SafetyLimits(max_cancels=3))
    snapshot = Snapshot(transfers=seeding)
    plan = reconcile(snapshot, policy, NOW)
    assert "cancel 5 transfers" in safety_violations(plan, snapshot, policy)[0]
    done = Transfer(1, "t", "COMPLETED", HASH_A, file_id=99)
    known = [verified(i) for i in range(1, 20)]
    vanished = Snapshot(transfers=(done,), journal=facts({HASH_A: 1}, known))
    plan = reconcile(vanished, Policy(), NOW)
    assert any("lists no files" in p for p in safety_violations(plan, vanished, Policy()))


# --- properties ------------------------------------------------------------------------------

STATUSES = ["IN_QUEUE", "DOWNLOADING", "SEEDING", "PREPARING_SEED", "COMPLETED", "ERROR", "ODD"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Snapshot, Policy]:
    count = draw(st.integers(0, 12))
    files: list[RemoteFile] = []
    folders = [0]
    for file_id in range(1, count + 1):
        parent = draw(st.sampled_from(folders))
        name = draw(st.sampled_from(["a", "A", "b.mkv", "..", "con", "é", "é", "x:y"]))
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["REGULAR", "REGULAR", "SHARED_ROOT"]))
            files.append(RemoteFile(file_id, name, parent, 0, True, None, kind))
            folders.append(file_id)
        else:
            files.append(
                RemoteFile(file_id, name, parent, draw(st.integers(0, 50)), False, "0" * 8)
            )
    hashes = [f"{n:040x}" for n in range(1, 6)]
    transfers = tuple(
        Transfer(
            tid,
            f"t{tid}",
            draw(st.sampled_from(STATUSES)),
            draw(st.sampled_from(hashes)),
            file_id=draw(st.one_of(st.none(), st.integers(1, count + 2))),
            seconds_seeding=draw(st.integers(0, 100_000)),
            # made of a magnet, one a .torrent dropped later may replace
            source=draw(st.sampled_from([None, "magnet:?xt=urn:btih:x"])),
        )
        for tid in range(1, draw(st.integers(0, 5)) + 1)
    )
    submitted = {h: draw(st.integers(1, 6)) for h in draw(st.sets(st.sampled_from(hashes)))}
    states = {
        item.id: draw(st.sampled_from(["new", "placed", "staged"]))
        for item in files
        if not item.is_folder
    }
    done = [
        (verified if states[item.id] == "placed" else in_staging)(item.id, size=item.size)
        for item in files
        if states.get(item.id, "new") != "new"
    ]
    in_stage = {item.id: item.size for item in files if states.get(item.id) == "staged"}
    blackhole = tuple(
        draw(st.sampled_from([torrent, magnet]))(
            f"f{n}.{draw(st.sampled_from(['torrent', 'magnet']))}",
            draw(st.sampled_from([*hashes, None])),
        )
        for n in range(draw(st.integers(0, 5)))
    )
    blackhole = tuple(
        replace(item, problem="bad") if item.info_hash is None else item for item in blackhole
    )
    policy = Policy(
        cancel_seeding=draw(st.booleans()),
        clean_finished=draw(st.booleans()),
        download=draw(st.booleans()),
        delete_remote_after_download=draw(st.booleans()),
        manage_foreign_transfers=draw(st.booleans()),
        seeding_min_hours=draw(st.sampled_from([0.0, 10.0])),
        item_placement=draw(st.booleans()),
        filters=draw(st.sampled_from([Filters(), Filters(exclude=("*.mkv",), min_size=5)])),
    )
    names = sorted({item.name for item in files if item.parent_id == 0} | {"_"})
    local = LocalFacts(
        present_items=frozenset(draw(st.sets(st.sampled_from(names)))),
        verified=MappingProxyType(in_stage),
    )
    snapshot = Snapshot(blackhole, transfers, tuple(files), facts(submitted, done), local)
    return snapshot, policy


def apply(plan: Plan, snapshot: Snapshot) -> Snapshot:
    """A simulated world: what put.io, the folders and the journal look like after the plan."""
    blackhole = {item.path: item for item in snapshot.blackhole}
    transfers = {transfer.id: transfer for transfer in snapshot.transfers}
    files = {item.id: item for item in snapshot.files}
    submissions = dict(snapshot.journal.submissions)
    downloads = dict(snapshot.journal.downloads)
    next_id = max([1000, *transfers]) + 1
    present_items = set(snapshot.local.present_items)
    staged = dict(snapshot.local.verified)
    for action in plan:
        if isinstance(action, SubmitTorrent) and action.replaces is not None:
            del transfers[action.replaces]  # cancelled first: the .torrent takes its place
        if isinstance(action, SubmitTorrent | SubmitMagnet):
            transfers[next_id] = Transfer(next_id, action.name, "IN_QUEUE", action.info_hash)
            submissions[action.info_hash] = Submission(action.info_hash, next_id, action.name, NOW)
            next_id += 1
        if isinstance(
            action, SubmitTorrent | SubmitMagnet | RejectBlackholeFile | ArchiveDuplicate
        ):
            del blackhole[action.path]
        elif isinstance(action, CancelTransfer):
            del transfers[action.transfer_id]
        elif isinstance(action, CleanTransfers):
            for transfer_id in action.transfer_ids:
                del transfers[transfer_id]
        elif isinstance(action, Download) and action.staged:
            downloads[action.file_id] = in_staging(
                action.file_id, action.relative_path, action.size
            )
            staged[action.file_id] = action.size
        elif isinstance(action, Download | AdoptLocal):
            downloads[action.file_id] = verified(action.file_id, action.relative_path, action.size)
            staged.pop(action.file_id, None)
        elif isinstance(action, DeleteRemote):
            _delete_subtree(files, action.file_id)
        elif isinstance(action, PlaceItem):
            for file_id, relative in action.files:
                downloads[file_id] = verified(file_id, relative, downloads[file_id].size)
                staged.pop(file_id)
            present_items.add(action.name)
    own = frozenset(s.transfer_id for s in submissions.values() if s.transfer_id is not None)
    journal = JournalFacts(MappingProxyType(submissions), MappingProxyType(downloads), own)
    local = LocalFacts(present_items=frozenset(present_items), verified=MappingProxyType(staged))
    return Snapshot(
        tuple(blackhole.values()), tuple(transfers.values()), tuple(files.values()), journal, local
    )


def _delete_subtree(files: dict[int, RemoteFile], root: int) -> None:
    doomed = {root}
    changed = True
    while changed:
        extra = {fid for fid, item in files.items() if item.parent_id in doomed} - doomed
        doomed |= extra
        changed = bool(extra)
    for fid in doomed:
        files.pop(fid, None)


def _items_let_go(before: Snapshot, after: Snapshot) -> set[int]:
    """The top-level items that a transfer still at work held before a plan, and that
    the plan let go of by removing that transfer (a replaced magnet, say)."""
    by_id = {item.id: item for item in before.files}
    kept = {transfer.id for transfer in after.transfers}
    items: set[int] = set()
    for transfer in before.transfers:
        if transfer.id in kept or transfer.file_id is None:
            continue
        current = by_id.get(transfer.file_id)
        while current is not None and current.parent_id != 0:
            current = by_id.get(current.parent_id)
        if current is not None:
            items.add(current.id)
    return items


def _touches(action: object, items: set[int]) -> bool:
    if isinstance(action, PlaceItem):
        return action.item_id in items
    return isinstance(action, DeleteRemote) and action.file_id in items


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_applying_a_plan_then_reconciling_again_gives_an_empty_plan(
    world: tuple[Snapshot, Policy],
) -> None:
    """Save for the items a transfer held until this plan removed it: those wait one
    more run (``test_an_item_a_replaced_transfer_held_is_placed_by_the_next_run``)."""
    snapshot, policy = world
    after = apply(reconcile(snapshot, policy, NOW), snapshot)
    let_go = _items_let_go(snapshot, after)
    again = reconcile(after, policy, NOW)
    assert [action for action in again if not _touches(action, let_go)] == []
    assert reconcile(apply(again, after), policy, NOW).actions == ()


def test_an_item_a_replaced_transfer_held_is_placed_by_the_next_run() -> None:
    """put.io lists a transfer still at work on an item (here a magnet IN_QUEUE): the item
    is neither placed nor deleted while it may change. A .torrent dropped for it replaces
    that transfer in this plan, yet the plan places nothing of the item: it is decided
    from what was observed, and the item is placed by the next run, once put.io no longer
    lists the transfer (one run late, never early)."""
    held = Transfer(2, "t", "IN_QUEUE", HASH_A, source=f"magnet:?xt=urn:btih:{HASH_A}", file_id=5)
    snapshot = Snapshot(
        blackhole=(torrent("a.torrent", HASH_A),),
        transfers=(held,),
        files=(file(5, "a"),),
        journal=facts({HASH_A: 2}, [in_staging(5)]),
        local=LocalFacts(verified={5: 10}),
    )
    plan = reconcile(snapshot, Policy(cancel_seeding=False), NOW)
    assert [(type(action), getattr(action, "replaces", None)) for action in plan] == [
        (SubmitTorrent, 2)
    ]
    after = apply(plan, snapshot)
    (place,) = reconcile(after, Policy(cancel_seeding=False), NOW)
    assert isinstance(place, PlaceItem) and place.files == ((5, "a"),)


@settings(max_examples=200, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_whatever_the_listing_order(
    world: tuple[Snapshot, Policy], rng: random.Random
) -> None:
    snapshot, policy = world
    shuffled = replace(
        snapshot,
        files=tuple(rng.sample(snapshot.files, len(snapshot.files))),
        transfers=tuple(rng.sample(snapshot.transfers, len(snapshot.transfers))),
        blackhole=tuple(rng.sample(snapshot.blackhole, len(snapshot.blackhole))),
    )
    assert reconcile(snapshot, policy, NOW) == reconcile(shuffled, policy, NOW)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_a_torrent_new_in_the_blackhole_as_a_torrent_file_is_submitted_as_one(
    world: tuple[Snapshot, Policy],
) -> None:
    snapshot, policy = world
    policy = replace(policy, submit_blackhole=True)
    as_torrent = {
        item.info_hash
        for item in snapshot.blackhole
        if item.kind == "torrent" and item.problem is None
    }
    submitted = [action for action in reconcile(snapshot, policy, NOW) if action.kind == "submit"]
    assert len({action.info_hash for action in submitted}) == len(submitted), "once a hash"
    for action in submitted:
        assert isinstance(action, SubmitTorrent) == (action.info_hash in as_torrent)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_transfers_not_submitted_by_us_are_only_touched_when_configured(
    world: tuple[Snapshot, Policy],
) -> None:
    snapshot, policy = world
    policy = replace(policy, manage_foreign_transfers=False)
    ours = snapshot.journal.own_transfer_ids
    ours_by_hash = set(snapshot.journal.submissions)
    touched: set[int] = set()
    for action in reconcile(snapshot, policy, NOW):
        if isinstance(action, CancelTransfer):
            touched.add(action.transfer_id)
        if isinstance(action, CleanTransfers):
            touched.update(action.transfer_ids)
        if isinstance(action, SubmitTorrent) and action.replaces is not None:
            touched.add(action.replaces)
    by_id = {transfer.id: transfer for transfer in snapshot.transfers}
    assert all(tid in ours or by_id[tid].hash in ours_by_hash for tid in touched)
