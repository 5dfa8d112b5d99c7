"""Page-level delta between two CRIU dumps of the same process tree.

A dump keeps each task's memory as raw 4 KiB pages in `pages-<id>.img`, in the order of the
entries of `pagemap-<pid>.img` (protobuf: a head {pages_id = 1}, then one entry per run of pages
{vaddr = 1, nr_pages = 2 (0 in CRIU 4.x, which writes the count as pages = 5), in_parent = 3,
flags = 4}). Two dumps taken seconds apart hold mostly the same pages at the same virtual
addresses, so the delta is: for every page of the new file, "same as the page at this vaddr in
the old file", "the old page with these bytes changed" or a new page. Encoding compares memory
with memcmp (no copies, no compression search, unlike xdelta3 on a 200 MB file); decoding copies
the unchanged runs inside the kernel (copy_file_range) and writes the other pages.

Delta file: MAGIC, uint32 run count, runs of (uint8 kind, uint32 pages, uint64 base offset),
then the data of the NEW and CHANGED runs in order: a NEW page as is, a CHANGED page as a
uint32 length and either the page as is (length 4096) or its XOR with the old page, deflated
(a page a program changed in a few places is mostly zeros then)."""

import bisect
import concurrent.futures
import ctypes
import errno
import mmap
import os
import stat
import struct
import zlib

from ansible.module_utils.edge_criu_stats import protobuf_fields
from ansible.module_utils.edge_errors import EdgeError

PAGE = 4096
MAGIC = b"EDGEPGD2"
RUN = struct.Struct("<BIQ")
LENGTH = struct.Struct("<I")
COPY, NEW, CHANGED = 0, 1, 2
PE_PARENT = 1 << 0
PE_PRESENT = 1 << 2
BLOCK_PAGES = 64
COMPARE_THREADS = 4
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_LIBC.memcmp.restype = ctypes.c_int


class PagemapError(EdgeError):
    """A pagemap or page delta could not be read or does not fit its pages file."""


def read_pagemap(path):
    """(pages_id, [(vaddr, pages)]) of the runs whose data is in this dump's pages file."""
    with open(path, "rb") as handle:
        data = handle.read()
    entries, pos = [], 8  # two magic words
    try:
        while pos < len(data):
            (length,) = struct.unpack_from("<I", data, pos)
            entries.append(protobuf_fields(data[pos + 4:pos + 4 + length]))
            pos += 4 + length
    except (struct.error, IndexError, ValueError) as exc:
        raise PagemapError("%s is not a CRIU pagemap image: %s" % (path, exc)) from exc
    if not entries or 1 not in entries[0]:
        raise PagemapError("%s has no pagemap head" % path)
    runs = []
    for entry in entries[1:]:
        flags = entry.get(4, PE_PRESENT)
        if not flags & PE_PRESENT or flags & PE_PARENT or entry.get(3):
            continue
        runs.append((entry[1], entry.get(5) or entry.get(2, 0)))
    return entries[0][1], runs


def open_regular(path, flags=os.O_RDONLY, mode=0o600):
    """os.open that refuses a symlink (O_NOFOLLOW) and anything but a regular file."""
    try:
        # O_NONBLOCK: a fifo in place of a file must not hang the open (no effect on files)
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise PagemapError("%s is a symlink, not a regular file" % path) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PagemapError("%s is not a regular file" % path)
    return fd


def pages_files(directory):
    """{pages file name: pagemap file name} for the dumps' pagemaps found in directory."""
    found = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("pagemap-") and name.endswith(".img") \
                and not os.path.islink(os.path.join(directory, name)):
            try:
                pages_id, _runs = read_pagemap(os.path.join(directory, name))
            except (OSError, PagemapError):
                continue
            found["pages-%d.img" % pages_id] = name
    return found


class _Offsets:
    """Where a page-aligned vaddr's page lies in a pages file, from the file's runs (looked up
    by bisection: a table of every page took 0.23 s for 1 GB, inside the frozen window)."""

    def __init__(self, runs):
        placed, offset = [], 0
        for vaddr, pages in runs:
            if pages:
                placed.append((vaddr, vaddr + pages * PAGE, offset))
            offset += pages * PAGE
        placed.sort()
        self.total = offset
        self._starts = [start for start, _end, _offset in placed]
        self._placed = placed

    def get(self, vaddr):
        """The page's offset in the file, or None when the file does not hold that page."""
        at = bisect.bisect_right(self._starts, vaddr) - 1
        if at < 0:
            return None
        start, end, offset = self._placed[at]
        return offset + (vaddr - start) if vaddr < end else None


def _map(path):
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return None, 0
        # ACCESS_COPY gives a writable (private) buffer, which ctypes needs to take its address.
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY), size


class _Pages:
    """A pages file mapped in memory, with the address memcmp needs."""

    def __init__(self, path):
        self.map, self.size = _map(path)
        self._anchor = ctypes.c_char.from_buffer(self.map) if self.map is not None else None
        self.address = ctypes.addressof(self._anchor) if self._anchor is not None else 0

    def same(self, offset, other, other_offset, length):
        return _LIBC.memcmp(self.address + offset, other.address + other_offset, length) == 0

    def close(self):
        self._anchor = None
        if self.map is not None:
            self.map.close()


def _blocks(target_runs, base_index):
    """The target's pages in blocks of at most BLOCK_PAGES: (vaddr, offset in the target file,
    pages, offset of the same vaddrs in the base file when they lie there in one piece, else None)."""
    blocks, offset = [], 0
    for vaddr, pages in target_runs:
        for page in range(0, pages, BLOCK_PAGES):
            count = min(BLOCK_PAGES, pages - page)
            start = base_index.get(vaddr + page * PAGE)
            end = base_index.get(vaddr + (page + count - 1) * PAGE)
            contiguous = start is not None and end == start + (count - 1) * PAGE
            blocks.append((vaddr + page * PAGE, offset + page * PAGE, count, start if contiguous else None))
        offset += pages * PAGE
    return blocks


def _compare_blocks(target, base, blocks, workers=None):
    """For each block, whether it is unchanged in the base. memcmp releases the GIL, so the blocks
    are compared in slices on a thread per CPU (at most COMPARE_THREADS): the frozen window of a
    large service waits on this scan of both dumps."""
    def compare(part):
        return [start is not None and target.same(offset, base, start, pages * PAGE)
                for _vaddr, offset, pages, start in part]

    if workers is None:
        workers = min(os.cpu_count() or 1, COMPARE_THREADS, max(1, len(blocks) // 64))
    if workers == 1 or len(blocks) < 2:
        return compare(blocks)
    step = -(-len(blocks) // workers)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(compare, [blocks[at:at + step] for at in range(0, len(blocks), step)])
        return [unchanged for part in parts for unchanged in part]


def encode(base_pagemap, base_pages, target_pagemap, target_pages, out_path):
    """Write the page delta turning base_pages into target_pages; returns its statistics."""
    _id, base_runs = read_pagemap(base_pagemap)
    _id, target_runs = read_pagemap(target_pagemap)
    base_index = _Offsets(base_runs)
    base_total = base_index.total
    target_total = sum(pages for _vaddr, pages in target_runs) * PAGE
    base, target = _Pages(base_pages), _Pages(target_pages)
    try:
        if base.size != base_total or target.size != target_total:
            raise PagemapError("the pagemaps do not describe their pages files (%d/%d, %d/%d bytes)"
                               % (base.size, base_total, target.size, target_total))
        runs = []

        def add(kind, base_offset, pages=1):
            if runs and runs[-1][0] == kind and (kind == NEW or runs[-1][2] + runs[-1][1] * PAGE == base_offset):
                runs[-1][1] += pages
            else:
                runs.append([kind, pages, base_offset])

        data = []
        blocks = _blocks(target_runs, base_index)
        unchanged = _compare_blocks(target, base, blocks)
        for index, (vaddr, offset, pages, start) in enumerate(blocks):
            if unchanged[index]:
                add(COPY, start, pages)
                continue
            for page in range(pages):
                at = base_index.get(vaddr + page * PAGE)
                here = offset + page * PAGE
                if at is None:
                    add(NEW, 0)
                    data.append(target.map[here:here + PAGE])
                elif target.same(here, base, at, PAGE):
                    add(COPY, at)
                else:
                    add(CHANGED, at)
                    data.append(_changed_page(target.map[here:here + PAGE], base.map[at:at + PAGE]))
        with open(out_path, "wb") as out:
            out.write(MAGIC + struct.pack("<I", len(runs)))
            out.write(b"".join(RUN.pack(kind, pages, base_offset) for kind, pages, base_offset in runs))
            out.write(b"".join(data))
        os.chmod(out_path, 0o600)
        return {"pages": target_total // PAGE, "changed_pages": len(data), "runs": len(runs)}
    finally:
        base.close()
        target.close()


def _xor(one, other):
    return (int.from_bytes(one, "little") ^ int.from_bytes(other, "little")).to_bytes(PAGE, "little")


def _changed_page(new, old):
    """A CHANGED page's record: its XOR with the old page deflated when that is smaller (a
    sparse change), else the page itself (a page rewritten with new data does not compress)."""
    diff = _xor(new, old)
    if diff.count(0) >= PAGE // 4:
        packed = zlib.compress(diff, 1)
        if len(packed) < PAGE:
            return LENGTH.pack(len(packed)) + packed
    return LENGTH.pack(PAGE) + new


def _read(handle, length, path):
    if length > _left(handle):
        raise PagemapError("%s is truncated" % path)
    chunk = handle.read(length)
    if len(chunk) != length:
        raise PagemapError("%s is truncated" % path)
    return chunk


def _changed_pages(delta, base, base_offset, pages, path):
    """The pages of a CHANGED run, rebuilt from their records and the old pages."""
    out = []
    for page in range(pages):
        (length,) = LENGTH.unpack(_read(delta, LENGTH.size, path))
        if length > PAGE:
            raise PagemapError("%s has a page record of %d bytes (at most %d)" % (path, length, PAGE))
        record = _read(delta, length, path)
        if length == PAGE:
            out.append(record)
            continue
        try:
            inflater = zlib.decompressobj()
            diff = inflater.decompress(record, PAGE + 1)
        except zlib.error as exc:
            raise PagemapError("%s has a damaged page record: %s" % (path, exc)) from exc
        old = os.pread(base, PAGE, base_offset + page * PAGE)
        if len(diff) != PAGE or len(old) != PAGE:
            raise PagemapError("%s does not fit the base pages file" % path)
        out.append(_xor(diff, old))
    return b"".join(out)


def _left(handle):
    return os.fstat(handle.fileno()).st_size - handle.tell()


def check_runs(runs, base_size, delta_left, size=None, path="the page delta"):
    """Refuse a run table that reads outside the base pages file or the delta, has unknown
    kinds, or rebuilds another size than `size` (the manifest's): a delta is data from
    another host. Returns the rebuilt size."""
    total = data = 0
    for kind, pages, base_offset in runs:
        length = pages * PAGE
        if kind not in (COPY, NEW, CHANGED):
            raise PagemapError("%s has an unknown run kind %d" % (path, kind))
        if kind != NEW and (base_offset % PAGE or base_offset + length > base_size):
            raise PagemapError("%s reads %d bytes at offset %d of a base pages file of %d bytes"
                               % (path, length, base_offset, base_size))
        data += length if kind == NEW else pages * LENGTH.size if kind == CHANGED else 0
        total += length
    if data > delta_left:
        raise PagemapError("%s is truncated: its runs need %d more bytes than it has" % (path, data - delta_left))
    if size is not None and total != size:
        raise PagemapError("%s rebuilds %d bytes, the manifest says %d" % (path, total, size))
    return total


def decode(base_pages, delta_path, out_path, consume_base=False, size=None):
    """Rebuild the target pages file from base_pages and the delta; returns its size.
    consume_base: when every page sits at the same offset in both files (the process mapped
    nothing new, the usual case between two dumps seconds apart), write the changed pages into
    base_pages itself and move it to out_path instead of copying 300 MB (base_pages is gone).
    Every run is checked against the sizes of the base pages file and the delta (and against
    `size`) before anything is written; out_path is created, never followed or overwritten."""
    with open(open_regular(delta_path), "rb") as delta:
        if delta.read(len(MAGIC)) != MAGIC:
            raise PagemapError("%s is not a page delta" % delta_path)
        (count,) = struct.unpack("<I", _read(delta, 4, delta_path))
        table = _read(delta, count * RUN.size, delta_path)
        runs = list(RUN.iter_unpack(table))
        with open(open_regular(base_pages, os.O_RDWR if consume_base else os.O_RDONLY), "rb") as base:
            base_stat = os.fstat(base.fileno())
            check_runs(runs, base_stat.st_size, _left(delta), size, delta_path)
            in_place = consume_base and _same_layout(runs, base_stat.st_size)
            out_fd = os.dup(base.fileno()) if in_place else os.open(
                out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            written = _apply(runs, delta, delta_path, base, out_fd, in_place)
        if delta.read(1):
            raise PagemapError("%s has data after its last page" % delta_path)
    if in_place:
        os.rename(base_pages, out_path)
        moved = os.lstat(out_path)
        if (moved.st_dev, moved.st_ino) != (base_stat.st_dev, base_stat.st_ino):
            raise PagemapError("%s was replaced while it was rebuilt" % base_pages)
    return written


def _apply(runs, delta, delta_path, base, out_fd, in_place):
    with open(out_fd, "wb", buffering=0) as out:
        written = 0
        for kind, pages, base_offset in runs:
            length = pages * PAGE
            if kind == COPY:
                if not in_place:
                    _copy_range(base.fileno(), out.fileno(), base_offset, written, length)
            elif kind == NEW:
                os.pwrite(out.fileno(), _read(delta, length, delta_path), written)
            else:
                os.pwrite(out.fileno(), _changed_pages(delta, base.fileno(), base_offset, pages, delta_path), written)
            written += length
    return written


def _same_layout(runs, base_size):
    """Whether every kept or changed page is at the same offset in the base, and nothing new."""
    written = 0
    for kind, pages, base_offset in runs:
        if kind == NEW or base_offset != written:
            return False
        written += pages * PAGE
    return written == base_size


def _copy_range(src, dst, src_offset, dst_offset, length):
    while length:
        try:
            done = os.copy_file_range(src, dst, length, src_offset, dst_offset)
        except OSError:
            done = os.pwrite(dst, os.pread(src, min(length, 16 << 20), src_offset), dst_offset)
        if done <= 0:
            raise PagemapError("the base pages file ends before offset %d" % src_offset)
        src_offset += done
        dst_offset += done
        length -= done
