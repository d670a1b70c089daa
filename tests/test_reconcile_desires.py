"""The reconciler and what RPC clients asked for: submitted once, held while paused,
their own seed limits instead of the global rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

from putio_mirror.core.plan import (
    ArchiveDuplicate,
    CancelTransfer,
    CleanTransfers,
    Download,
    SubmitDesired,
    SubmitTorrent,
    TidyStaging,
)
from putio_mirror.core.reconcile import reconcile
from putio_mirror.core.state import (
    BlackholeItem,
    Desire,
    JournalFacts,
    LocalFacts,
    Policy,
    RemoteFile,
    Snapshot,
    StagedEntry,
    Submission,
    Transfer,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HASH_A, HASH_B, HASH_C = "a" * 40, "b" * 40, "c" * 40


def desire(info_hash: str, number: int, **fields: object) -> Desire:
    made = Desire(info_hash, number, f"item {number}", "torrent", NOW)
    return replace(made, **fields)  # type: ignore[arg-type]


def facts(*desires: Desire, submissions: tuple[Submission, ...] = ()) -> JournalFacts:
    return JournalFacts(
        submissions=MappingProxyType({entry.info_hash: entry for entry in submissions}),
        desires=MappingProxyType({entry.info_hash: entry for entry in desires}),
        own_transfer_ids=frozenset(s.transfer_id for s in submissions if s.transfer_id),
    )


def test_each_desire_is_submitted_once_unless_paused_failed_submitted_or_on_putio() -> None:
    snapshot = Snapshot(
        transfers=(Transfer(9, "c", "DOWNLOADING", hash=HASH_C),),
        journal=facts(
            desire(HASH_B, 2, category="tv-sonarr", magnet_uri="magnet:?xt=urn:btih:" + HASH_B,
                   kind="magnet"),
            desire(HASH_A, 1),
            desire(HASH_C, 3),  # put.io has it already
            desire("d" * 40, 4, paused=True),
            desire("e" * 40, 5, error="put.io refused it"),
            desire("f" * 40, 6),
            submissions=(Submission("f" * 40, 12, "item 6", NOW),),
        ),
    )  # fmt: skip
    plan = reconcile(snapshot, Policy(), NOW)
    submits = [action for action in plan if isinstance(action, SubmitDesired)]
    assert submits == [
        SubmitDesired("item 1", HASH_A),
        SubmitDesired("item 2", HASH_B, "magnet:?xt=urn:btih:" + HASH_B, "tv-sonarr"),
    ]
    assert [action.key for action in submits] == [f"upload:{HASH_A}", f"magnet:{HASH_B}"]


def test_a_desire_whose_submission_got_no_answer_is_submitted_again() -> None:
    snapshot = Snapshot(
        journal=facts(desire(HASH_A, 1), submissions=(Submission(HASH_A, None, "x", NOW),))
    )
    assert [action.key for action in reconcile(snapshot, Policy(), NOW)] == [f"upload:{HASH_A}"]


def magnet_transfer(transfer_id: int, info_hash: str, status: str, **fields: object) -> Transfer:
    source = f"magnet:?xt=urn:btih:{info_hash}"
    return Transfer(transfer_id, "t", status, hash=info_hash, source=source, **fields)  # type: ignore[arg-type]


def test_the_transfer_a_desire_s_torrent_replaces_does_not_hang_on_the_listing_order() -> None:
    magnet = "magnet:?xt=urn:btih:" + HASH_A
    other = Transfer(1, "t1", "IN_QUEUE", HASH_A)
    ours = Transfer(2, "t2", "IN_QUEUE", HASH_A, source=magnet)
    journal = facts(desire(HASH_A, 1), submissions=(Submission(HASH_A, 2, "item 1", NOW),))
    for listed in ((other, ours), (ours, other)):
        snapshot = Snapshot(transfers=listed, journal=journal)
        submits = [
            action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "submit"
        ]
        assert [getattr(action, "replaces", None) for action in submits] == [2], listed


def test_a_torrent_replaces_its_magnet_s_transfer_only_while_put_io_has_fetched_nothing() -> None:
    """A private torrent added as a magnet never starts (no metadata without DHT); its
    .torrent, added later, goes in its place. A transfer under way is never sent twice,
    nor is one not ours touched."""
    hashes = [f"{n:x}" * 40 for n in range(1, 10)]
    transfers = (
        magnet_transfer(1, hashes[0], "IN_QUEUE"),
        magnet_transfer(2, hashes[1], "PREPARING_DOWNLOAD", percent_done=0),
        magnet_transfer(3, hashes[2], "ERROR", error_message="no metadata"),
        magnet_transfer(4, hashes[3], "DOWNLOADING", percent_done=10),
        magnet_transfer(5, hashes[4], "WAITING", percent_done=3),  # fetched some already
        Transfer(6, "t", "IN_QUEUE", hash=hashes[5]),  # sent as a .torrent already
        magnet_transfer(7, hashes[6], "IN_QUEUE"),  # added by hand on put.io: not ours
        magnet_transfer(8, hashes[7], "IN_QUEUE"),  # the desire is still a magnet
        magnet_transfer(9, hashes[8], "IN_QUEUE"),  # paused by its client
    )
    desires = [desire(info_hash, n) for n, info_hash in enumerate(hashes, 1)]
    desires[7] = replace(desires[7], kind="magnet", magnet_uri=transfers[7].source or "")
    desires[8] = replace(desires[8], paused=True)
    ours = tuple(Submission(t.hash or "", t.id, t.name, NOW) for t in transfers if t.id != 7)
    snapshot = Snapshot(transfers=transfers, journal=facts(*desires, submissions=ours))
    submits = [action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "submit"]
    assert [(action.info_hash, action.replaces) for action in submits] == [  # type: ignore[union-attr]
        (hashes[0], 1),
        (hashes[1], 2),
        (hashes[2], 3),
    ]
    assert [action.key for action in submits] == [f"upload:{h}" for h in hashes[:3]]


def test_the_same_torrent_in_the_blackhole_waits_for_the_desire_and_is_archived() -> None:
    dropped = BlackholeItem("/bh/a.torrent", "a.torrent", "torrent", 10, HASH_A)
    snapshot = Snapshot(blackhole=(dropped,), journal=facts(desire(HASH_A, 1)))
    plan = reconcile(snapshot, Policy(), NOW)
    submit, archive = plan.actions
    assert isinstance(submit, SubmitDesired) and isinstance(archive, ArchiveDuplicate)
    assert archive.requires == (submit.key,)


def magnet_desire(info_hash: str, number: int, **fields: object) -> Desire:
    uri = f"magnet:?xt=urn:btih:{info_hash}"
    return desire(info_hash, number, kind="magnet", magnet_uri=uri, **fields)


def test_a_magnet_desire_takes_the_torrent_dropped_in_the_blackhole_and_submits_it() -> None:
    """Two doors at once: Sonarr's magnet over RPC, a .torrent of it in the blackhole. The
    desire takes the .torrent (submitted into its category, by the desire alone), before
    the magnet goes to put.io or in place of its transfer put.io has not started; the
    blackhole's other files of the torrent wait for it and are filed away."""
    hashes = [f"{n:x}" * 40 for n in range(1, 7)]
    transfers = (
        magnet_transfer(2, hashes[1], "PREPARING_DOWNLOAD"),  # ours, not started
        magnet_transfer(3, hashes[2], "DOWNLOADING", percent_done=5),  # started
        magnet_transfer(6, hashes[5], "IN_QUEUE"),  # found again: its answer was lost
    )
    desires = [magnet_desire(info_hash, n, category="tv") for n, info_hash in enumerate(hashes, 1)]
    desires[3] = replace(desires[3], paused=True)
    desires[4] = replace(desires[4], error="put.io refused the magnet")
    journal = facts(
        *desires,
        submissions=(
            Submission(hashes[1], 2, "item 2", NOW),
            Submission(hashes[2], 3, "item 3", NOW),
            Submission(hashes[5], None, "item 6", NOW),
        ),
    )
    dropped = [
        BlackholeItem(f"/bh/{n}.torrent", f"{n}.torrent", "torrent", 10, info_hash)
        for n, info_hash in enumerate(hashes, 1)
    ]
    dropped.append(BlackholeItem("/bh/1.magnet", "1.magnet", "magnet", 10, hashes[0]))
    plan = reconcile(
        Snapshot(transfers=transfers, blackhole=tuple(dropped), journal=journal), Policy(), NOW
    )
    desired = {action.info_hash: action for action in plan if isinstance(action, SubmitDesired)}
    assert {h: (a.replaces, a.dropped, a.magnet_uri, a.category) for h, a in desired.items()} == {
        hashes[0]: (None, ("/bh/1.torrent", "1.torrent"), "", "tv"),  # not on put.io yet
        hashes[1]: (2, ("/bh/2.torrent", "2.torrent"), "", "tv"),
        hashes[4]: (None, ("/bh/5.torrent", "5.torrent"), "", "tv"),  # answers the refusal
        hashes[5]: (6, ("/bh/6.torrent", "6.torrent"), "", "tv"),
    }
    assert desired[hashes[5]].requires == (f"record:{hashes[5]}",)
    blackhole = {action.target: action for action in plan if action.kind in ("submit", "archive")}
    assert set(blackhole) - {a.name for a in desired.values()} == {
        "1.magnet",  # waits for the desire's submission
        "3.torrent",  # put.io started the magnet: a duplicate, by design
        "4.torrent",  # the desire is paused: the blackhole submits it as ever
    }
    assert blackhole["1.magnet"].requires == (f"upload:{hashes[0]}",)
    assert isinstance(blackhole["3.torrent"], ArchiveDuplicate)
    assert isinstance(blackhole["4.torrent"], SubmitTorrent)


def test_a_desire_s_replacement_cut_short_before_its_cancel_is_done_in_one_plan() -> None:
    """The journal forgot the magnet's transfer, put.io still has it: the plan records it
    and replaces it at once (as the blackhole's does), not one record now and the
    replacement a run later."""
    transfer = magnet_transfer(7, HASH_A, "IN_QUEUE")
    journal = facts(desire(HASH_A, 1), submissions=(Submission(HASH_A, None, "item 1", NOW),))
    plan = reconcile(Snapshot(transfers=(transfer,), journal=journal), Policy(), NOW)
    assert [action.key for action in plan] == [f"record:{HASH_A}", f"upload:{HASH_A}"]
    submit = plan.actions[1]
    assert isinstance(submit, SubmitDesired)
    assert submit.replaces == 7 and submit.requires == (f"record:{HASH_A}",)


def test_seed_limits_set_over_rpc_replace_the_global_seeding_rule() -> None:
    seeding = [
        Transfer(1, "a", "SEEDING", hash=HASH_A, seconds_seeding=600, current_ratio=0.5),
        Transfer(2, "b", "SEEDING", hash=HASH_B, seconds_seeding=600, current_ratio=2.5),
        Transfer(3, "c", "SEEDING", hash=HASH_C, seconds_seeding=3700, current_ratio=0.1),
    ]
    submitted = tuple(Submission(t.hash or "", t.id, t.name, NOW) for t in seeding)
    snapshot = Snapshot(
        transfers=tuple(seeding),
        journal=facts(
            desire(HASH_A, 1, seed_ratio_limit=2.0, seed_idle_minutes=60),  # neither reached
            desire(HASH_B, 2, seed_ratio_limit=2.0),  # ratio reached
            desire(HASH_C, 3, seed_idle_minutes=60),  # time reached
            submissions=submitted,
        ),
    )
    cancels = [action for action in reconcile(snapshot, Policy(), NOW) if action.kind == "cancel"]
    assert [action.transfer_id for action in cancels if isinstance(action, CancelTransfer)] == [
        2,
        3,
    ]


def tree_of_item(item_id: int) -> tuple[RemoteFile, ...]:
    return (
        RemoteFile(item_id, "Show", 0, 0, True),
        RemoteFile(item_id + 1, "a.mkv", item_id, 10, False, "0000000a"),
    )


def test_a_paused_or_removed_item_is_neither_fetched_nor_placed() -> None:
    transfers = (
        Transfer(1, "a", "COMPLETED", hash=HASH_A, file_id=10),
        Transfer(2, "b", "COMPLETED", hash=HASH_B, file_id=20),
        Transfer(3, "c", "COMPLETED", hash=HASH_C, file_id=30),
    )
    submitted = tuple(Submission(t.hash or "", t.id, t.name, NOW) for t in transfers)
    journal = replace(
        facts(desire(HASH_A, 1, paused=True), desire(HASH_C, 3), submissions=submitted),
        removed_desires=frozenset({HASH_B}),
    )
    files = tree_of_item(10) + tree_of_item(20) + tree_of_item(30)
    plan = reconcile(Snapshot(transfers=transfers, files=files, journal=journal), Policy(), NOW)
    fetched = [action.file_id for action in plan if isinstance(action, Download)]
    assert fetched == [31]  # only the item nobody paused or removed
    cleaned = [action for action in plan if isinstance(action, CleanTransfers)]
    assert [clean.transfer_ids for clean in cleaned] == [(2, 3)]  # removed: cleaned at once


def test_the_unfinished_transfer_of_a_removed_item_is_cancelled() -> None:
    transfers = (
        Transfer(1, "a", "DOWNLOADING", hash=HASH_A),
        Transfer(2, "b", "DOWNLOADING", hash=HASH_B),
    )
    journal = replace(
        facts(submissions=tuple(Submission(t.hash or "", t.id, t.name, NOW) for t in transfers)),
        removed_desires=frozenset({HASH_A}),
    )
    plan = reconcile(Snapshot(transfers=transfers, journal=journal), Policy(), NOW)
    assert [action.key for action in plan] == ["cancel:1"]


def test_items_removed_with_their_data_are_deleted_on_put_io_only_when_configured() -> None:
    files = tree_of_item(10) + tree_of_item(20)
    journal = replace(facts(), purged_items=frozenset({10, 99}))  # 99: gone from put.io
    snapshot = Snapshot(files=files, journal=journal)
    assert not [a for a in reconcile(snapshot, Policy(), NOW) if a.kind == "delete"]
    policy = Policy(delete_remote_on_rpc_remove=True)
    deletes = [a.key for a in reconcile(snapshot, policy, NOW) if a.kind == "delete"]
    assert deletes == ["delete-remote:10"]


def test_rpc_items_are_fetched_first_in_their_download_order_then_the_other_files() -> None:
    transfers = (
        Transfer(1, "a", "COMPLETED", hash=HASH_A, file_id=10),
        Transfer(2, "b", "COMPLETED", hash=HASH_B, file_id=20),
        Transfer(3, "c", "COMPLETED", hash=HASH_C, file_id=30),
    )
    submitted = tuple(Submission(t.hash or "", t.id, t.name, NOW) for t in transfers[:2])
    moved = (desire(HASH_A, 1, queue_position=1), desire(HASH_B, 2, queue_position=0))
    journal = facts(*moved, submissions=submitted)
    files = (
        *tree_of_item(10),
        *tree_of_item(20),
        RemoteFile(21 + 1, "b.srt", 20, 5, False, "0000000b"),
        *tree_of_item(30),  # put.io's own, not asked for over RPC
        RemoteFile(5, "Aardvark.mkv", 0, 7, False, "00000005"),
    )
    plan = reconcile(Snapshot(transfers=transfers, files=files, journal=journal), Policy(), NOW)
    fetched = [action.file_id for action in plan if isinstance(action, Download)]
    assert fetched == [21, 22, 11, 5, 31]  # item B, then item A, then the rest by path


def test_what_staging_holds_of_a_removed_item_is_tidied_at_once_even_after_its_transfer_went() -> (
    None
):
    fresh = NOW  # younger than any grace period
    staging = (
        StagedEntry("part", 11, 4, fresh),  # removed, its transfer still listed
        StagedEntry("part", 21, 4, fresh),  # removed, its transfer cleaned: the journal knows
        StagedEntry("part", 31, 4, fresh),  # paused: kept for when it resumes
    )
    journal = replace(
        facts(desire(HASH_C, 3, paused=True)),
        removed_desires=frozenset({HASH_A, HASH_B}),
        removed_ids=frozenset({20, 21}),
    )
    snapshot = Snapshot(
        transfers=(
            Transfer(1, "a", "COMPLETED", hash=HASH_A, file_id=10),
            Transfer(3, "c", "COMPLETED", hash=HASH_C, file_id=30),
        ),
        files=tree_of_item(10) + tree_of_item(20) + tree_of_item(30),
        journal=journal,
        local=LocalFacts(staging=staging),
    )
    plan = reconcile(snapshot, Policy(), NOW)
    assert not [action for action in plan if isinstance(action, Download)]
    tidied = [action for action in plan if isinstance(action, TidyStaging)]
    assert [(action.key, action.why) for action in tidied] == [
        ("tidy:part:11", "removed by its RPC client"),
        ("tidy:part:21", "removed by its RPC client"),
    ]
