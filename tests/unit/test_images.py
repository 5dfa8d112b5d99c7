"""Delta encode/decode of checkpoint image sets with the real xdelta3."""

import os
import shutil
import stat

import pytest
from ansible.module_utils.edge_images import MANIFEST, ImageSetError, decode, encode, list_files, xdelta_window

pytestmark = pytest.mark.skipif(shutil.which("xdelta3") is None, reason="xdelta3 is installed by make test")


def run(argv):
    import subprocess
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.fixture
def dumps(tmp_path):
    """Two dumps of the same 'process': 3 MiB of pages with 64 KiB changed, small files changed."""
    pages = bytearray(os.urandom(3 << 20))
    write(str(tmp_path / "base/pages-1.img"), bytes(pages))
    write(str(tmp_path / "base/core-1.img"), b"core-a" * 10)
    pages[1 << 20:(1 << 20) + 65536] = os.urandom(65536)
    write(str(tmp_path / "final/pages-1.img"), bytes(pages))
    write(str(tmp_path / "final/core-1.img"), b"core-b" * 10)
    write(str(tmp_path / "final/extra-2.img"), os.urandom(100))  # only in the final dump
    return tmp_path


def test_delta_rebuilds_every_file_byte_for_byte(dumps):
    manifest = encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    assert manifest["files"]["pages-1.img"]["encoding"] == "vcdiff"
    assert manifest["files"]["core-1.img"]["encoding"] == "whole"
    assert manifest["files"]["extra-2.img"]["encoding"] == "whole"
    delta_size = sum(os.path.getsize(os.path.join(dumps / "delta", f)) for f in list_files(str(dumps / "delta")))
    assert delta_size < 200_000  # 64 KiB changed out of 3 MiB
    rebuilt = decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "out"))
    assert rebuilt["files"] == 3
    for name in list_files(str(dumps / "final")):
        assert (dumps / "out" / name).read_bytes() == (dumps / "final" / name).read_bytes()


def test_delta_and_rebuilt_dirs_are_private(dumps):
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "out"))
    for directory in ("delta", "out"):
        assert stat.S_IMODE(os.stat(dumps / directory).st_mode) == 0o700


def test_a_rebuild_does_not_write_through_a_directory_swapped_for_a_symlink_meanwhile(dumps):
    """Another edge replaces the rebuild's directory with a symlink while xdelta3 runs (edge
    keys may write in the migration's directory): nothing is written where it points, and the
    rebuild is refused instead of being put in place."""
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    elsewhere = dumps / "elsewhere"
    elsewhere.mkdir()
    out = dumps / "out"
    out.mkdir()

    def swapping_run(argv):
        if not out.is_symlink():
            os.rename(out, dumps / "moved-away")
            os.symlink(elsewhere, out)
        return run(argv)

    with pytest.raises(ImageSetError, match="symlink"):
        decode(swapping_run, str(dumps / "base"), str(dumps / "delta"), str(out))
    assert os.listdir(elsewhere) == []
    assert [name for name in os.listdir(dumps) if name.startswith(".rebuild-")] == []


def test_corrupted_delta_is_caught_by_checksum(dumps):
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    whole = dumps / "delta" / "core-1.img"
    whole.write_bytes(b"tampered" + whole.read_bytes()[8:])
    with pytest.raises(ImageSetError, match="checksum mismatch for core-1.img"):
        decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "out"))


def test_wrong_base_fails_instead_of_restoring_garbage(dumps):
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    write(str(dumps / "base/pages-1.img"), os.urandom(3 << 20))
    with pytest.raises(ImageSetError) as failure:
        decode(run, str(dumps / "base"), str(dumps / "delta"), str(dumps / "out"))
    assert "pages-1.img" in failure.value.msg


def test_missing_manifest_is_named(tmp_path):
    (tmp_path / "delta").mkdir()
    (tmp_path / "base").mkdir()
    with pytest.raises(ImageSetError, match="no readable manifest"):
        decode(run, str(tmp_path / "base"), str(tmp_path / "delta"), str(tmp_path / "out"))


def test_source_window_covers_the_file():
    assert xdelta_window(200 << 20) == 200 << 20
    assert xdelta_window(10) == 1 << 20
    assert xdelta_window(5 << 30) == 1 << 31


def test_manifest_is_written(dumps):
    encode(run, str(dumps / "base"), str(dumps / "final"), str(dumps / "delta"))
    assert (dumps / "delta" / MANIFEST).exists()


def test_a_gzipped_image_is_rebuilt_from_its_own_bytes_not_recompressed(tmp_path):
    """CRIU keeps a tmpfs as a gzip'd tar; its delta must not go through this host's gzip,
    whose output for the same files need not be the bytes the source wrote."""
    import gzip
    files = bytearray(os.urandom(1 << 20) + bytes(2 << 20))
    write(str(tmp_path / "base/tmpfs-dev-64.tar.gz.img"), gzip.compress(bytes(files), compresslevel=1, mtime=0))
    files[-10:] = b"0123456789"
    final = gzip.compress(bytes(files), compresslevel=1, mtime=0)
    write(str(tmp_path / "final/tmpfs-dev-64.tar.gz.img"), final)
    manifest = encode(run, str(tmp_path / "base"), str(tmp_path / "final"), str(tmp_path / "delta"))
    assert manifest["files"]["tmpfs-dev-64.tar.gz.img"]["encoding"] == "vcdiff"
    decode(run, str(tmp_path / "base"), str(tmp_path / "delta"), str(tmp_path / "out"))
    assert (tmp_path / "out/tmpfs-dev-64.tar.gz.img").read_bytes() == final


def test_a_large_file_the_same_in_both_dumps_is_taken_from_the_base(tmp_path):
    blob = os.urandom(1 << 20)
    write(str(tmp_path / "base/tmpfs-dev-65.tar.gz.img"), blob)
    write(str(tmp_path / "final/tmpfs-dev-65.tar.gz.img"), blob)
    manifest = encode(run, str(tmp_path / "base"), str(tmp_path / "final"), str(tmp_path / "delta"))
    assert manifest["files"]["tmpfs-dev-65.tar.gz.img"]["encoding"] == "same"
    assert list_files(str(tmp_path / "delta")) == [MANIFEST]
    decode(run, str(tmp_path / "base"), str(tmp_path / "delta"), str(tmp_path / "out"))
    assert (tmp_path / "out/tmpfs-dev-65.tar.gz.img").read_bytes() == blob
    # A base that is not the one the source compared against is caught by the checksum.
    write(str(tmp_path / "base/tmpfs-dev-65.tar.gz.img"), os.urandom(1 << 20))
    with pytest.raises(ImageSetError, match="checksum mismatch"):
        decode(run, str(tmp_path / "base"), str(tmp_path / "delta"), str(tmp_path / "out"))
