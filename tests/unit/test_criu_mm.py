"""Whether a lazy restore could map a checkpoint's memory: mm images written here in CRIU's
image format, the host's memory and overcommit mode given as files."""

import os
import struct

import pytest
from ansible.module_utils.edge_criu_mm import lazy_restore_obstacle, made_writable
from ansible.module_utils.edge_criu_stats import protobuf_fields, protobuf_items
from criu_images import field

GIB, TIB = 2**30, 2**40
PRIVATE_ANON = 0x22  # MAP_PRIVATE | MAP_ANONYMOUS
NORESERVE = 0x4000
REGULAR_ANON_PRIVATE = 0x201  # VMA_AREA_REGULAR | VMA_ANON_PRIVATE
REGULAR_ANON_SHARED = 0x101
READ_WRITE = 0x3


def vma(start, size, prot=0, flags=PRIVATE_ANON, status=REGULAR_ANON_PRIVATE):
    return b"".join(field(n, v) for n, v in ((1, start), (2, start + size), (3, 0), (4, 0), (5, prot), (6, flags),
                                             (7, status)))


def write_mm(directory, pid, vmas):
    os.makedirs(directory, exist_ok=True)
    message = field(1, 0x400000) + field(2, 0x401000) + b"".join(field(14, v) for v in vmas) + field(15, 1)
    with open(os.path.join(directory, "mm-%d.img" % pid), "wb") as handle:
        handle.write(struct.pack("<III", 0x54564319, 0x57492820, len(message)) + message)


def host(tmp_path, mode=0, mem=2 * GIB, swap=0, commit_limit=3 * GIB, committed=1 * GIB):
    meminfo, overcommit = tmp_path / "meminfo", tmp_path / "overcommit_memory"
    meminfo.write_text("MemTotal:       %d kB\nMemFree:        1 kB\nSwapTotal:      %d kB\n"
                       "CommitLimit:    %d kB\nCommitted_AS:   %d kB\n"
                       % (mem // 1024, swap // 1024, commit_limit // 1024, committed // 1024))
    overcommit.write_text("%d\n" % mode)
    return dict(meminfo=str(meminfo), overcommit=str(overcommit))


def test_an_inaccessible_reservation_larger_than_memory_and_swap_is_an_obstacle(tmp_path):
    # MariaDB's InnoDB reserves 8 TiB without access and without MAP_NORESERVE.
    images = str(tmp_path / "final")
    write_mm(images, 7, [vma(0x7f0000000000, 64 * 2**20, prot=READ_WRITE), vma(0x770000000000, 8 * TIB)])
    assert made_writable(images) == [(7, 0x770000000000, 8 * TIB)]
    reason = lazy_restore_obstacle(images, **host(tmp_path, mem=2 * GIB, swap=GIB))
    assert "pid 7" in reason and "8.0 TiB" in reason and "0x770000000000" in reason
    assert "3.0 GiB" in reason and "restored in one go" in reason


@pytest.mark.parametrize("case,vmas", [
    ("MAP_NORESERVE (glibc's malloc arenas)", [vma(0x770000000000, 8 * TIB, flags=PRIVATE_ANON | NORESERVE)]),
    ("writable already: accounted at the dump too", [vma(0x770000000000, 8 * TIB, prot=READ_WRITE)]),
    ("shared: not premapped", [vma(0x770000000000, 8 * TIB, status=REGULAR_ANON_SHARED)]),
    ("smaller than memory and swap", [vma(0x770000000000, GIB)]),
    ("no such mapping", [vma(0x7f0000000000, 4096, prot=READ_WRITE)]),
])
def test_no_obstacle(tmp_path, case, vmas):
    images = str(tmp_path / "final")
    write_mm(images, 1, vmas)
    assert lazy_restore_obstacle(images, **host(tmp_path)) is None, case


def test_overcommit_always_maps_anything(tmp_path):
    images = str(tmp_path / "final")
    write_mm(images, 1, [vma(0x770000000000, 8 * TIB)])
    assert lazy_restore_obstacle(images, **host(tmp_path, mode=1)) is None


def test_strict_overcommit_adds_up_every_process_against_what_is_left_to_commit(tmp_path):
    images = str(tmp_path / "final")
    write_mm(images, 1, [vma(0x770000000000, GIB)])
    write_mm(images, 2, [vma(0x770000000000, GIB + 2**20)])
    # 3 GiB limit, 1 GiB committed: 2 GiB left, 2 GiB + 1 MiB asked for.
    reason = lazy_restore_obstacle(images, **host(tmp_path, mode=2))
    assert "pid 2" in reason and "in all" in reason and "vm.overcommit_memory=2" in reason
    assert lazy_restore_obstacle(images, **host(tmp_path, mode=2, commit_limit=4 * GIB)) is None


ODD_VMA = field(14, field(1, b"not a number") + field(2, 8 * TIB) + field(7, REGULAR_ANON_PRIVATE))


@pytest.mark.parametrize("content", [b"", b"\x19\x43\x56\x54\x20\x28\x49\x57", struct.pack("<III", 1, 2, 999) + b"x",
                                     struct.pack("<III", 1, 2, 3) + b"\xff\xff\xff",
                                     struct.pack("<III", 1, 2, len(ODD_VMA)) + ODD_VMA])
def test_an_unreadable_layout_is_no_obstacle(tmp_path, content):
    # CRIU reads the images itself; a lazy restore that fails is still restored again in one go.
    images = tmp_path / "final"
    images.mkdir()
    (images / "mm-1.img").write_bytes(content)
    assert lazy_restore_obstacle(str(images), **host(tmp_path)) is None


def test_repeated_fields_keep_every_value_and_the_field_table_the_last():
    message = field(14, b"one") + field(1, 5) + field(14, b"two")
    assert protobuf_items(message) == [(14, b"one"), (1, 5), (14, b"two")]
    assert protobuf_fields(message) == {14: b"two", 1: 5}
