"""The download folder's disk is not mounted (a USB disk not plugged in at boot, a NAS
share that did not come up): its mount point is an empty folder of the system disk. A run
must not download into it (filling the system disk, hidden once the disk is mounted over
it, and put.io's copy deleted on the word of a file no one will see). The disk is a real
FUSE filesystem mounted and unmounted; real runs against the local put.io, a SQLite
journal (a shared PostgreSQL one knows other hosts' files too: there only /etc/fstab
tells, ``test_mounts``)."""

from __future__ import annotations

import pytest

from putio_mirror.core.errors import ExitCode
from tests.faulty_fs import faulty_mount
from tests.mirror_env import Mirror
from tests.test_hosts import shared_journal

__all__ = ["shared_journal"]  # a fixture, used here


@pytest.mark.parametrize("inside", [False, True], ids=["at-the-mount-point", "in-a-folder-of-it"])
def test_a_download_folder_whose_disk_is_not_mounted_is_neither_written_nor_emptied_on_put_io(
    mirror: Mirror, inside: bool
) -> None:
    disk, mount_point = mirror.root / "usb-disk", mirror.root / "media"
    downloads = mount_point / "putio" if inside else mount_point
    mirror.write_config(
        paths={"downloads": str(downloads)},
        download={"delete_remote_after": True},
    )
    mirror.fake.add_file("First.mkv", size=300_000)
    with faulty_mount(disk, mount_point, mirror.root / "control"):
        assert mirror.run("sync").code == 0
        assert (downloads / "First.mkv").is_file()
    second = mirror.fake.add_file("Second.mkv", size=300_000)
    # the disk is not there: its mount point is an empty folder of the system disk
    result = mirror.run("sync")
    assert result.code == ExitCode.NEEDS_ATTENTION, result.err
    assert f"the download folder {downloads}" in result.err and "mounted" in result.err
    assert list(mount_point.iterdir()) == [], "written to the system disk under the mount point"
    assert second in {item["id"] for item in mirror.fake.files()}
    doctor = mirror.run("doctor")
    assert doctor.code == 2 and "is its disk mounted?" in doctor.out, doctor.out
    assert f"(mkdir -p {downloads / '.putio-mirror-staging'})" in doctor.out
    assert "download nodes: the first byte" in doctor.out, "the file deleted is not asked"
    with faulty_mount(disk, mount_point, mirror.root / "control"):
        assert mirror.run("sync").code == 0
        assert sorted(path.name for path in downloads.glob("*.mkv")) == ["First.mkv", "Second.mkv"]


def test_a_new_host_s_empty_folder_on_a_shared_journal_is_not_taken_for_a_disk_not_mounted(
    mirror: Mirror, shared_journal: str
) -> None:
    # A PostgreSQL journal knows every host's files: a second host's new download folder
    # is empty, and neither its runs nor doctor may take it for a disk not mounted.
    mirror.fake.add_file("First.mkv", size=1000)
    mirror.write_config(paths={"journal": shared_journal})
    assert mirror.run("sync").code == 0
    second_host = mirror.root / "other-downloads"
    second_host.mkdir()
    mirror.write_config(paths={"journal": shared_journal, "downloads": str(second_host)})
    assert "is its disk mounted?" not in mirror.run("doctor").out
    assert "mounted" not in mirror.run("sync", "--dry-run").err
