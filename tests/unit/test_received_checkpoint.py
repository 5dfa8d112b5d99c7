"""The destination trusts nothing it receives: a delta whose manifest names paths outside the
checkpoint, received directories holding symlinks or other non-regular files, and page deltas
whose runs reach outside their files are refused before anything is written where they point."""

import json
import os
import shutil
import struct

import pytest
from ansible.module_utils import edge_pagemap
from ansible.module_utils.edge_images import (
    MANIFEST,
    ImageSetError,
    check_received,
    decode,
    encode,
    pages_checksums,
)
from test_pagemap import PAGE, pages, write_dump

pytestmark = pytest.mark.skipif(shutil.which("xdelta3") is None, reason="xdelta3 is installed by make test")


def run(argv):
    import subprocess
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def delta(tmp_path):
    """A base dump, a final one (a pages file, a small file) and the delta between them, plus
    a directory outside the checkpoint a hostile source would like to write in."""
    heap = pages(40)
    write_dump(str(tmp_path / "base"), [(0x400000, heap)])
    heap[7] = os.urandom(PAGE)
    write_dump(str(tmp_path / "final"), [(0x400000, heap)])
    (tmp_path / "final" / "core-1.img").write_bytes(b"core" * 10)
    encode(run, str(tmp_path / "base"), str(tmp_path / "final"), str(tmp_path / "delta"))
    (tmp_path / "outside").mkdir()
    return tmp_path


def manifest(delta):
    return json.loads((delta / "delta" / MANIFEST).read_text())


def tamper(delta, change):
    found = manifest(delta)
    change(found["files"])
    (delta / "delta" / MANIFEST).write_text(json.dumps(found))


def rebuild(delta):
    return decode(run, str(delta / "base"), str(delta / "delta"), str(delta / "out"))


def test_an_untouched_delta_still_rebuilds(delta):
    assert rebuild(delta)["files"] == 3
    for name in ("pages-1.img", "pagemap-1.img", "core-1.img"):
        assert (delta / "out" / name).read_bytes() == (delta / "final" / name).read_bytes()


@pytest.mark.parametrize("name", ["../outside/x", "../../etc/cron.d/x", "/etc/cron.d/x", "s/../../x", "", ".", "..",
                                  "sub/core-1.img", MANIFEST])
def test_a_file_name_that_is_not_a_plain_checkpoint_name_is_refused(delta, name):
    tamper(delta, lambda files: files.__setitem__(name, dict(files["core-1.img"])))
    with pytest.raises(ImageSetError, match="manifest"):
        rebuild(delta)
    assert os.listdir(delta / "outside") == [] and not os.path.exists(delta / "out")


@pytest.mark.parametrize("base", ["../outside/pages-1.img", "/etc/shadow", "", None, "..", 7])
def test_a_base_that_is_not_a_plain_checkpoint_name_is_refused(delta, base):
    tamper(delta, lambda files: files["pages-1.img"].__setitem__("base", base))
    with pytest.raises(ImageSetError, match="base"):
        rebuild(delta)


@pytest.mark.parametrize("change", [
    lambda entry: entry.__setitem__("size", -1), lambda entry: entry.__setitem__("size", "40"),
    lambda entry: entry.__setitem__("encoding", "shell"), lambda entry: entry.__setitem__("sha256", "x" * 64),
])
def test_a_manifest_entry_with_bad_fields_is_refused(delta, change):
    tamper(delta, lambda files: change(files["core-1.img"]))
    with pytest.raises(ImageSetError, match="manifest"):
        rebuild(delta)


def test_a_symlink_in_the_received_delta_is_refused_before_anything_is_written(delta):
    # the proof of concept of the review: a symlink plus a name through it
    os.symlink(str(delta / "outside"), delta / "delta" / "s")
    tamper(delta, lambda files: files.__setitem__("s/../../outside/x", dict(files["core-1.img"])))
    with pytest.raises(ImageSetError, match="not a regular file"):
        rebuild(delta)
    assert os.listdir(delta / "outside") == []


@pytest.mark.parametrize("where", ["base", "delta"])
def test_symlinks_and_fifos_in_received_directories_are_refused(delta, where):
    os.symlink("/etc/shadow", delta / where / "extra.img")
    with pytest.raises(ImageSetError, match="extra.img, which is not a regular file"):
        rebuild(delta)
    os.remove(delta / where / "extra.img")
    os.mkfifo(delta / where / "extra.img")
    with pytest.raises(ImageSetError, match="extra.img, which is not a regular file"):
        rebuild(delta)


def test_a_symlinked_pages_file_in_the_base_is_refused(delta):
    os.rename(delta / "base" / "pages-1.img", delta / "outside" / "pages-1.img")
    os.symlink(str(delta / "outside" / "pages-1.img"), delta / "base" / "pages-1.img")
    with pytest.raises(ImageSetError):
        rebuild(delta)


def test_a_received_directory_that_is_a_symlink_is_refused(delta):
    os.rename(delta / "delta", delta / "outside" / "delta")
    os.symlink(str(delta / "outside" / "delta"), delta / "delta")
    with pytest.raises(ImageSetError, match="not a directory"):
        check_received(str(delta / "delta"))


def test_files_planted_in_the_rebuild_directory_are_not_followed(delta):
    (delta / "out").mkdir()
    os.symlink(str(delta / "outside" / "core-1.img"), delta / "out" / "core-1.img")
    os.symlink(str(delta / "outside" / "pages-1.img"), delta / "out" / "pages-1.img")
    rebuild(delta)
    assert os.listdir(delta / "outside") == []
    assert not os.path.islink(delta / "out" / "core-1.img")
    os.rename(delta / "out", delta / "outside" / "out")
    os.symlink(str(delta / "outside" / "out"), delta / "out")
    with pytest.raises(ImageSetError, match="symlink"):
        rebuild(delta)


def page_delta(path, runs, data=b""):
    with open(path, "wb") as handle:
        handle.write(edge_pagemap.MAGIC + struct.pack("<I", len(runs)))
        handle.write(b"".join(edge_pagemap.RUN.pack(*run) for run in runs))
        handle.write(data)


@pytest.mark.parametrize("runs,data,size,message", [
    ([(edge_pagemap.COPY, 41, 0)], b"", None, "reads"),  # the base has 40 pages
    ([(edge_pagemap.COPY, 1, 40 * PAGE)], b"", None, "reads"),
    ([(edge_pagemap.COPY, 1, 100)], b"", None, "reads"),  # not at a page boundary
    ([(edge_pagemap.CHANGED, 2, 39 * PAGE)], b"\0" * 8, None, "reads"),
    ([(edge_pagemap.NEW, 1 << 30, 0)], b"", None, "truncated"),  # 4 TB announced, nothing sent
    ([(edge_pagemap.CHANGED, 1 << 30, 0)], b"", None, "reads|truncated"),
    ([(7, 1, 0)], b"", None, "unknown run kind"),
    ([(edge_pagemap.CHANGED, 1, 0)], struct.pack("<I", 1 << 31), PAGE, "page record"),
    ([(edge_pagemap.COPY, 40, 0), (edge_pagemap.NEW, 1, 0)], b"\1" * PAGE, 40 * PAGE, "manifest says"),
], ids=["copy-past-end", "copy-at-end", "copy-unaligned", "changed-past-end", "new-huge", "changed-huge",
        "unknown-kind", "record-too-long", "size-mismatch"])
def test_page_delta_runs_are_checked_against_the_file_sizes(tmp_path, runs, data, size, message):
    write_dump(str(tmp_path / "base"), [(0x400000, pages(40))])
    page_delta(str(tmp_path / "d"), runs, data)
    with pytest.raises(edge_pagemap.PagemapError, match=message):
        edge_pagemap.decode(str(tmp_path / "base" / "pages-1.img"), str(tmp_path / "d"), str(tmp_path / "out"),
                            size=size)
    if message != "page record":  # refused before anything was written
        assert not os.path.exists(tmp_path / "out")


def test_a_run_table_longer_than_the_delta_is_refused(tmp_path):
    write_dump(str(tmp_path / "base"), [(0x400000, pages(1))])
    with open(tmp_path / "d", "wb") as handle:
        handle.write(edge_pagemap.MAGIC + struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(edge_pagemap.PagemapError, match="truncated"):
        edge_pagemap.decode(str(tmp_path / "base" / "pages-1.img"), str(tmp_path / "d"), str(tmp_path / "out"))


def test_a_page_delta_never_writes_through_an_existing_file(tmp_path):
    write_dump(str(tmp_path / "base"), [(0x400000, pages(1))])
    page_delta(str(tmp_path / "d"), [(edge_pagemap.COPY, 1, 0)])
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(str(tmp_path / "victim"), tmp_path / "out")
    with pytest.raises(FileExistsError):
        edge_pagemap.decode(str(tmp_path / "base" / "pages-1.img"), str(tmp_path / "d"), str(tmp_path / "out"))
    assert (tmp_path / "victim").read_bytes() == b"keep"


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_the_base_check_before_the_freeze_reads_regular_files_only(delta, kind):
    os.remove(delta / "base" / "pages-1.img")
    if kind == "symlink":
        os.symlink("/etc/passwd", delta / "base" / "pages-1.img")
    else:
        os.mkfifo(delta / "base" / "pages-1.img")  # would hang a plain open
    with pytest.raises(ImageSetError, match="not a regular file"):
        pages_checksums(str(delta / "base"))
