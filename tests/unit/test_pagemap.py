"""Page-level delta of CRIU memory images: pagemaps written here in CRIU's image format."""

import json
import os
import struct

import pytest
from ansible.module_utils import edge_pagemap
from ansible.module_utils.edge_images import ImageSetError, decode, encode, pages_checksums
from criu_images import field

PAGE = edge_pagemap.PAGE


def entry(fields):
    return b"".join(field(number, value) for number, value in fields)


def write_dump(directory, runs, pages_id=1, pid=1, flags=4):
    """A pagemap-<pid>.img (CRIU 4.x layout: nr_pages 0, count in field 5) and its pages file
    for runs [(vaddr, [page bytes, ...])]."""
    os.makedirs(directory, exist_ok=True)
    image = struct.pack("<II", 0x54564319, 0x56084025)
    for message in [entry([(1, pages_id)])] + [entry([(1, vaddr), (2, 0), (4, flags), (5, len(data))])
                                               for vaddr, data in runs]:
        image += struct.pack("<I", len(message)) + message
    with open(os.path.join(directory, "pagemap-%d.img" % pid), "wb") as handle:
        handle.write(image)
    with open(os.path.join(directory, "pages-%d.img" % pages_id), "wb") as handle:
        handle.write(b"".join(page for _vaddr, data in runs for page in data))


def pages(count):
    return [os.urandom(PAGE) for _ in range(count)]


def run(argv):
    import subprocess
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def dumps(tmp_path):
    """A base dump and a later one of the same task: one page changed, a run grown, a run
    moved to a new address, a new run; the later dump's pages file has another id."""
    heap, stack, moved = pages(200), pages(3), pages(5)
    write_dump(str(tmp_path / "base"), [(0x400000, heap), (0x7f0000000000, moved), (0x7ffff000, stack)])
    heap2 = list(heap)
    heap2[130] = os.urandom(PAGE)
    write_dump(str(tmp_path / "final"), [(0x400000, heap2 + pages(2)), (0x10000000, pages(1)),
                                         (0x7f0000100000, moved), (0x7ffff000, stack)], pages_id=2)
    with open(str(tmp_path / "final/core-1.img"), "wb") as handle:
        handle.write(b"core")
    return tmp_path


def test_read_pagemap_counts_the_pages_of_each_run(dumps):
    pages_id, runs = edge_pagemap.read_pagemap(str(dumps / "final/pagemap-1.img"))
    assert pages_id == 2
    assert runs == [(0x400000, 202), (0x10000000, 1), (0x7f0000100000, 5), (0x7ffff000, 3)]
    assert edge_pagemap.pages_files(str(dumps / "final")) == {"pages-2.img": "pagemap-1.img"}


def test_page_delta_sends_only_changed_pages_and_rebuilds_the_file(dumps):
    manifest = encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    described = manifest["files"]["pages-2.img"]
    assert described["encoding"] == "pages" and described["base"] == "pages-1.img"
    # 1 changed heap page, 2 new heap pages, 1 new run; the moved run is new at its address.
    assert described["changed_pages"] == 1 + 2 + 1 + 5
    assert described["payload"] < 10 * PAGE + 4096
    decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "rebuilt"))
    for name in ("pages-2.img", "pagemap-1.img", "core-1.img"):
        with open(str(dumps / "final" / name), "rb") as want, open(str(dumps / "rebuilt" / name), "rb") as got:
            assert got.read() == want.read(), name


def test_a_pagemap_that_does_not_describe_its_pages_falls_back_to_xdelta(dumps):
    with open(str(dumps / "final/pages-2.img"), "ab") as handle:
        handle.write(b"x" * PAGE)  # one page more than the pagemap says
    manifest = encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"), min_delta_size=1)
    assert manifest["files"]["pages-2.img"]["encoding"] == "whole"  # no pages-2.img in the base
    assert not os.path.exists(str(dumps / "delta/pages-2.img.pgdelta"))
    decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "rebuilt"))


def test_page_delta_off_gives_xdelta_patches(dumps):
    os.rename(str(dumps / "final/pages-2.img"), str(dumps / "final/pages-1.img"))
    manifest = encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"), page_delta=False)
    assert manifest["files"]["pages-1.img"]["encoding"] == "vcdiff"


def test_a_truncated_page_delta_is_rejected(dumps, tmp_path):
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    path = str(dumps / "delta/pages-2.img.pgdelta")
    with open(path, "rb+") as handle:
        handle.truncate(os.path.getsize(path) - 100)
    with pytest.raises(edge_pagemap.PagemapError, match="truncated"):
        edge_pagemap.decode(str(dumps / "base/pages-1.img"), path, str(tmp_path / "out.img"))


def test_a_pages_file_rebuilt_from_a_checked_base_is_not_checked_again(dumps):
    base = str(dumps / "base")
    checksums = pages_checksums(base)
    assert list(checksums) == ["pages-1.img"]
    encode(run, base, str(dumps / "final"), str(dumps / "delta"), base_checksums=checksums)
    # The source's checksum of the final pages file is spoiled: only a check would notice.
    manifest_path = str(dumps / "delta/MANIFEST.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["files"]["pages-2.img"]["sha256"] = "0" * 64
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    decode(run, base, str(dumps / "delta"), str(dumps / "rebuilt"), verified_base=checksums)
    with pytest.raises(ImageSetError, match="checksum mismatch for pages-2.img"):
        decode(run, base, str(dumps / "delta"), str(dumps / "rebuilt2"), verified_base={"pages-1.img": "1" * 64})


def test_same_layout_patches_the_checked_base_in_place(tmp_path):
    heap = pages(50)
    write_dump(str(tmp_path / "base"), [(0x400000, heap)])
    changed = list(heap)
    changed[7] = os.urandom(PAGE)
    write_dump(str(tmp_path / "final"), [(0x400000, changed)])
    checksums = pages_checksums(str(tmp_path / "base"))
    manifest = encode(run, str(tmp_path / "base"), str(tmp_path / "final"), str(tmp_path / "delta"),
                      base_checksums=checksums)
    assert "sha256" not in manifest["files"]["pages-1.img"]  # the destination checks the base instead
    decode(run, str(tmp_path / "base"), str(tmp_path / "delta"), str(tmp_path / "rebuilt"), verified_base=checksums)
    assert (tmp_path / "rebuilt/pages-1.img").read_bytes() == b"".join(changed)
    assert not (tmp_path / "base/pages-1.img").exists()  # moved, not copied
    with pytest.raises(ImageSetError, match="no checksum"):
        decode(run, str(tmp_path / "final"), str(tmp_path / "delta"), str(tmp_path / "again"))


def test_a_page_is_found_in_the_base_by_its_run_whatever_the_runs_order():
    page = edge_pagemap.PAGE
    # File order: a run at 0x10000 (2 pages), an empty run, then one below it at 0x4000 (3 pages).
    offsets = edge_pagemap._Offsets([(0x10000, 2), (0x8000, 0), (0x4000, 3)])
    assert offsets.total == 5 * page
    assert [offsets.get(0x10000), offsets.get(0x10000 + page)] == [0, page]
    assert [offsets.get(0x4000), offsets.get(0x4000 + 2 * page)] == [2 * page, 4 * page]
    assert [offsets.get(0x0), offsets.get(0x4000 + 3 * page), offsets.get(0x8000), offsets.get(0x10000 + 2 * page)] == [
        None, None, None, None]


def test_blocks_compared_on_several_threads_give_the_one_thread_answers(dumps):
    _id, base_runs = edge_pagemap.read_pagemap(str(dumps / "base/pagemap-1.img"))
    _id, target_runs = edge_pagemap.read_pagemap(str(dumps / "final/pagemap-1.img"))
    blocks = edge_pagemap._blocks(target_runs, edge_pagemap._Offsets(base_runs))
    base = edge_pagemap._Pages(str(dumps / "base/pages-1.img"))
    target = edge_pagemap._Pages(str(dumps / "final/pages-2.img"))
    try:
        one = edge_pagemap._compare_blocks(target, base, blocks, workers=1)
        assert edge_pagemap._compare_blocks(target, base, blocks, workers=3) == one
    finally:
        base.close()
        target.close()
    # Heap blocks: two unchanged, one with page 130, one that runs past the base's heap; then a new
    # page, the run at a new address, and the unchanged stack.
    assert one == [True, True, False, False, False, False, True]
    assert [pages for _vaddr, _offset, pages, _start in blocks] == [64, 64, 64, 10, 1, 5, 3]
