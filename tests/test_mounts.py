"""Which filesystem holds a path: /proc/self/mountinfo as Linux writes it (escapes, bind
mounts, a container's overlay root, stacked and hidden mounts), and this machine's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from putio_mirror.local.mounts import (
    Mount,
    filesystem_of,
    mount_holding,
    parse_mountinfo,
    shared_filesystem,
    sharing_of,
    unmounted_mount_point,
)

# A Docker container on a NAS: an overlay root, a media share bound in from the host's NFS
# mount (root /volume1/media), a config folder bound from the host's ext4, an sshfs mount
# whose name holds a space (\040), a tab (\011) and a backslash (\134), a mergerfs pool, a
# mount hidden by a later one over its parent (/srv/old/inner, under /srv/old), and a
# device mounted twice at one point (the later on top).
CONTAINER = """\
1021 960 0:118 / / rw,relatime master:512 - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u
1022 1021 0:121 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1030 1021 0:52 /volume1/media /data rw,relatime shared:7 master:3 - nfs4 nas:/volume1 rw,vers=4.1
1031 1021 8:2 /var/lib/docker/volumes/cfg/_data /config rw,relatime - ext4 /dev/sda2 rw
1032 1021 0:60 / /mnt/my\\040share\\011x\\134y rw,nosuid,nodev - fuse.sshfs me@nas:/home\\040dir rw
1033 1021 0:61 / /mnt/pool rw,relatime shared:9 - fuse.mergerfs disk1:disk2 rw,user_id=0
1034 1021 0:62 / /srv/old/inner rw - cifs //nas/old rw
1035 1021 0:63 / /srv/old rw - tmpfs tmpfs rw
1036 1021 0:64 / /stack rw - ext4 /dev/sdb1 rw
1037 1036 0:65 / /stack rw - nfs nas:/stack rw
this line is no mount
"""


@pytest.fixture
def mounts() -> list[Mount]:
    return parse_mountinfo(CONTAINER)


def test_every_well_formed_line_is_a_mount_and_a_broken_one_is_skipped(
    mounts: list[Mount],
) -> None:
    assert len(mounts) == 10
    assert mounts[0] == Mount("/", "overlay", "overlay", "/", (0, 118))


def test_escaped_spaces_tabs_and_backslashes_are_read_back(mounts: list[Mount]) -> None:
    sshfs = mounts[4]
    assert sshfs.mount_point == "/mnt/my share\tx\\y"
    assert sshfs.source == "me@nas:/home dir" and sshfs.fstype == "fuse.sshfs"
    found = mount_holding("/mnt/my share\tx\\y/state/journal.sqlite3", mounts)
    assert found == sshfs


def test_a_bind_mount_is_told_by_its_mount_point_not_its_root(mounts: list[Mount]) -> None:
    found = mount_holding("/data/putio/journal.sqlite3", mounts)
    assert found is not None and found.fstype == "nfs4" and found.root == "/volume1/media"
    assert found.describe() == "a network filesystem (nfs4 at /data)"
    assert mount_holding("/volume1/media/x", mounts) == mounts[0], "the root is no path here"
    config = mount_holding("/config/journal.sqlite3", mounts)
    assert config is not None and config.fstype == "ext4" and config.sharing is None


def test_the_overlay_root_holds_what_no_longer_mount_point_does(mounts: list[Mount]) -> None:
    for path in ("/", "/app/state/journal.sqlite3", "/database", "/dat"):
        found = mount_holding(path, mounts)
        assert found is not None and found.fstype == "overlay", path
    pool = mount_holding("/mnt/pool/state/journal.sqlite3", mounts)
    assert pool is not None and pool.describe() == "a FUSE filesystem (fuse.mergerfs at /mnt/pool)"
    assert mount_holding("/mnt/poolside/x", mounts) == mounts[0], "a prefix of a name is none"


def test_the_topmost_of_mounts_at_one_point_holds_it(mounts: list[Mount]) -> None:
    found = mount_holding("/stack/journal.sqlite3", mounts)
    assert found is not None and found.fstype == "nfs"


def test_a_mount_hidden_under_a_later_one_over_its_parent_is_passed_over_by_device(
    mounts: list[Mount],
) -> None:
    # Longest prefix alone names the cifs share; the path's own device is the tmpfs's.
    path = "/srv/old/inner/journal.sqlite3"
    assert mount_holding(path, mounts).fstype == "cifs"  # type: ignore[union-attr]
    found = mount_holding(path, mounts, device=(0, 63))
    assert found is not None and found.fstype == "tmpfs"
    # a device mountinfo does not name (a btrfs subvolume's own): the longest prefix
    assert mount_holding(path, mounts, device=(0, 999)).fstype == "cifs"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fstype", "sharing"),
    [
        ("nfs", "network"),
        ("nfs4", "network"),
        ("cifs", "network"),
        ("smb3", "network"),
        ("9p", "network"),
        ("ceph", "network"),
        ("fuse.sshfs", "network"),
        ("fuse.rclone", "network"),
        ("virtiofs", "network"),  # the host's folder shared into a VM
        ("ocfs2", "network"),  # cluster filesystems: one disk, several hosts
        ("gfs2", "network"),
        ("fuse.mergerfs", "FUSE"),
        ("fuse", "FUSE"),
        ("fuseblk", None),  # ntfs-3g on a local USB disk
        ("fuseblk.exfat", None),  # a FUSE daemon of a local disk that names its subtype
        ("fusectl", None),  # FUSE's control filesystem, no FUSE filesystem of files
        ("ext4", None),
        ("overlay", None),
        ("tmpfs", None),
        ("zfs", None),
    ],
)
def test_network_and_fuse_filesystems_are_told_from_local_ones(
    fstype: str, sharing: str | None
) -> None:
    assert sharing_of(fstype) == sharing


def test_this_machines_own_mount_of_a_folder_is_found_on_its_device(tmp_path: Path) -> None:
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc/self/mountinfo here")
    found = filesystem_of(tmp_path / "not" / "made" / "journal.sqlite3")
    assert found is not None
    device = tmp_path.stat().st_dev
    assert found.device == (os.major(device), os.minor(device))
    assert str(tmp_path.resolve()).startswith(found.mount_point)


def test_a_link_is_followed_to_the_filesystem_it_leads_to(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(
        f"1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / {tmp_path}/share rw - nfs4 nas:/x rw\n"
    )
    (tmp_path / "share").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "share")
    found = filesystem_of(tmp_path / "link" / "journal.sqlite3", tmp_path / "mountinfo")
    assert found is not None and found.fstype == "nfs4"


def test_without_mountinfo_the_filesystem_is_unknown_not_an_error(tmp_path: Path) -> None:
    assert filesystem_of(tmp_path, tmp_path / "no-such-mountinfo") is None


def test_a_vms_host_folder_and_cluster_filesystems_are_shared_and_a_fuse_disk_is_not(
    tmp_path: Path,
) -> None:
    # A journal in a folder virtiofs shares from the VM's host, or on a cluster filesystem
    # several hosts mount at once, is told as a share; ntfs-3g's local USB disk is not.
    mounts = [
        ("vm", "virtiofs", "myfs"),
        ("san", "gfs2", "/dev/dm-3"),
        ("usb", "fuseblk", "/dev/sdb1"),
    ]
    lines = ["1 0 0:1 / / rw - ext4 /dev/sda1 rw"]
    for number, (name, fstype, source) in enumerate(mounts, start=2):
        (tmp_path / name).mkdir()
        lines.append(f"{number} 1 0:{number} / {tmp_path / name} rw - {fstype} {source} rw")
    (tmp_path / "mountinfo").write_text("\n".join(lines) + "\n")
    journal = Path("state") / "journal.sqlite3"
    vm = shared_filesystem(tmp_path / "vm" / journal, tmp_path / "mountinfo")
    assert vm is not None and vm.describe() == f"a network filesystem (virtiofs at {tmp_path}/vm)"
    san = shared_filesystem(tmp_path / "san" / journal, tmp_path / "mountinfo")
    assert san is not None and san.fstype == "gfs2"
    assert shared_filesystem(tmp_path / "usb" / journal, tmp_path / "mountinfo") is None


# A Raspberry Pi's /etc/fstab: its SD card, a USB disk by UUID (its mount point's name
# holding a space), a NAS share mounted on demand, a second USB disk mounted by hand, swap.
FSTAB = """\
# <file system> <mount point> <type> <options> <dump> <pass>
proc            /proc           proc    defaults          0       0
PARTUUID=1-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=1-02  /               ext4    defaults,noatime  0       1
UUID=ab-cd     /mnt/usb\\040disk ext4   defaults,nofail   0       2
//nas/media    /mnt/nas        cifs    x-systemd.automount,credentials=/etc/nas 0 0
UUID=ef-01     /mnt/spare      ext4    noauto            0       0
/swapfile      none            swap    sw                0       0
broken line
"""

PI_MOUNTED = """\
21 1 179:2 / / rw,noatime - ext4 /dev/root rw
25 21 179:1 / /boot/firmware rw,relatime - vfat /dev/mmcblk0p1 rw
30 21 0:40 / /mnt/nas rw,relatime - autofs systemd-1 rw
31 21 8:1 / /mnt/usb\\040disk rw,relatime - ext4 /dev/sda1 rw
"""


@pytest.mark.parametrize(
    ("path", "mounted", "expected"),
    [
        ("/mnt/usb disk/putio/downloads", PI_MOUNTED, None),
        ("/mnt/usb disk/putio/downloads", PI_MOUNTED.replace("31 21 8:1", "#"), "/mnt/usb disk"),
        ("/mnt/usb disk", "", "/mnt/usb disk"),
        ("/mnt/spare/putio", PI_MOUNTED, "/mnt/spare"),
        ("/mnt/nas/putio", PI_MOUNTED, None),  # an automount point: mounted on first use
        ("/home/pi/putio", PI_MOUNTED, None),  # the root disk, always there
        ("/mnt/usb disk2/putio", PI_MOUNTED, None),  # another folder, not under it
    ],
)
def test_a_path_under_an_fstab_mount_point_not_mounted_now_is_found(
    tmp_path: Path, path: str, mounted: str, expected: str | None
) -> None:
    fstab, mountinfo = tmp_path / "fstab", tmp_path / "mountinfo"
    fstab.write_text(FSTAB)
    mountinfo.write_text(mounted)
    assert unmounted_mount_point(Path(path), fstab, mountinfo) == expected


def test_without_fstab_or_mountinfo_nothing_is_said_to_be_unmounted(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text(FSTAB)
    assert unmounted_mount_point(Path("/mnt/spare/x"), tmp_path / "none", tmp_path / "none") is None
    assert unmounted_mount_point(Path("/mnt/spare/x"), fstab, tmp_path / "none") is None
