"""Whether this host's kernel lets CRIU's lazy restore map a checkpoint's memory.

A lazy restore premaps every private mapping of the process tree writable, so that pages can
be placed in it later (criu/mem.c premap_private_vma), inaccessible reservations included: a
restore in one go premaps only what it fills and maps the rest as it was. A reservation made
with PROT_NONE is not accounted by the kernel; made writable it is, like any private writable
memory without MAP_NORESERVE, and the kernel refuses it when it exceeds what the host could
ever commit ("Unable to map ANON_VMA: Cannot allocate memory"). MariaDB reserves 8 TiB so:
its lazy restore always failed, and the restore again in one go added about a second of
downtime.

The layout is read from the checkpoint's `mm-<pid>.img` (two magic words, a 32-bit length,
then the protobuf MmEntry whose field 14 repeats VmaEntry {start = 1, end = 2, prot = 5,
flags = 6 (mmap flags), status = 7 (CRIU's VMA_* bits)})."""

import glob
import os
import re
import struct

from ansible.module_utils.edge_criu_stats import protobuf_items

PROT_WRITE = 0x2
MAP_NORESERVE = 0x4000
VMA_AREA_REGULAR = 1 << 0
VMA_FILE_PRIVATE = 1 << 6
VMA_ANON_PRIVATE = 1 << 9
MM_VMAS = 14
MAX_MM_IMAGE = 64 * 2**20
OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER = 0, 1, 2
MM_IMAGE = re.compile(r"^mm-(\d+)\.img$")


def mappings(path):
    """[(start, end, prot, flags, status)] of one mm image."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_MM_IMAGE + 1)
    if len(data) > MAX_MM_IMAGE:
        raise ValueError("%s is larger than any memory layout" % path)
    (length,) = struct.unpack_from("<I", data, 8)  # after the two magic words
    if 12 + length > len(data):
        raise ValueError("%s is cut short" % path)
    found = []
    for number, value in protobuf_items(data[12:12 + length]):
        if number == MM_VMAS and isinstance(value, (bytes, bytearray)):
            vma = dict(protobuf_items(value))
            found.append((vma.get(1, 0), vma.get(2, 0), vma.get(5, 0), vma.get(6, 0), vma.get(7, 0)))
    return found


def made_writable(directory):
    """[(pid, start, size)] of the private mappings without write access and without
    MAP_NORESERVE, which a lazy restore maps writable (and the kernel then accounts)."""
    found = []
    for path in sorted(glob.glob(os.path.join(directory, "mm-*.img"))):
        match = MM_IMAGE.match(os.path.basename(path))
        if not match:
            continue
        for start, end, prot, flags, status in mappings(path):
            private = status & VMA_AREA_REGULAR and status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)
            if private and end > start and not prot & PROT_WRITE and not flags & MAP_NORESERVE:
                found.append((int(match.group(1)), start, end - start))
    return found


def _meminfo(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            name, _colon, rest = line.partition(":")
            words = rest.split()
            if words and words[0].isdigit():
                values[name] = int(words[0]) * 1024
    return values


def _size(number):
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if number >= scale:
            return "%.1f %s" % (number / scale, unit)
    return "%d bytes" % number


def lazy_restore_obstacle(directory, meminfo="/proc/meminfo", overcommit="/proc/sys/vm/overcommit_memory"):
    """Why this host's kernel would refuse a lazy restore of the checkpoint in `directory`
    (a sentence), or None when it would not or the images cannot tell (the lazy restore then
    goes ahead, and CRIU's own failure is still caught)."""
    try:
        with open(overcommit) as handle:
            mode = int(handle.read().strip())
        if mode == OVERCOMMIT_ALWAYS:
            return None
        areas = made_writable(directory)
        if not areas:
            return None
        memory = _meminfo(meminfo)
        pid, start, size = max(areas, key=lambda area: area[2])
        what = "pid %d of the checkpoint reserves %s at %#x without access (no MAP_NORESERVE)" % (
            pid, _size(size), start)
        if mode == OVERCOMMIT_GUESS:
            limit = memory["MemTotal"] + memory.get("SwapTotal", 0)
            if size > limit:
                return ("%s; a lazy restore maps it writable, and this kernel refuses a mapping larger than its "
                        "memory and swap (%s, vm.overcommit_memory=0): restored in one go" % (what, _size(limit)))
            return None
        if mode == OVERCOMMIT_NEVER:
            total = sum(area[2] for area in areas)
            room = memory["CommitLimit"] - memory["Committed_AS"]
            if total > room:
                return ("%s, %s in all; a lazy restore maps them writable, beyond the %s this kernel still commits "
                        "(vm.overcommit_memory=2): restored in one go" % (what, _size(total), _size(max(room, 0))))
        return None
    except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error):
        return None
