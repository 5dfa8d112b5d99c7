"""The `tar` CRIU's dumps find first on their PATH, run as CRIU runs it (the tmpfs as stdin,
the image file as stdout) with the system's tar and gzip."""

import gzip
import os
import subprocess

import pytest
from ansible.module_utils.edge_tmpfs_tar import dump_path

CRIU_ARGS = ["--create", "--gzip", "--no-unquote", "--no-wildcards", "--one-file-system", "--check-links",
             "--preserve-permissions", "--sparse", "--numeric-owner", "--directory", "/proc/self/fd/0", "."]


def dump_as_criu(path, tmpfs, image):
    """Run tar as CRIU's tmpfs dump does; return its exit code."""
    directory = os.open(str(tmpfs), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(image, "wb") as out:
            return subprocess.run(["tar"] + CRIU_ARGS, stdin=directory, stdout=out, stderr=subprocess.PIPE,
                                  env=dict(os.environ, PATH=path), check=False).returncode
    finally:
        os.close(directory)


def restore_as_criu(image, target):
    target.mkdir()
    with open(image, "rb") as archive:
        subprocess.run(["tar", "--extract", "--gzip", "--no-unquote", "--no-wildcards", "--directory", str(target)],
                       stdin=archive, check=True)


def files(root):
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _dirs, names in os.walk(root) for f in names}


@pytest.fixture
def tmpfs(tmp_path):
    root = tmp_path / "shm"
    (root / "sub").mkdir(parents=True)
    (root / "blob").write_bytes(os.urandom(3 << 20))
    (root / "sub" / "text").write_bytes(b"kept\n" * 1000)
    os.chmod(root / "sub" / "text", 0o640)
    return root


def test_a_large_tmpfs_is_archived_in_stored_gzip_blocks_that_tar_restores(tmp_path, tmpfs):
    path = dump_path(str(tmp_path / "bin"), threshold_kb=1024)
    image = tmp_path / "tmpfs-dev-64.tar.gz.img"
    assert dump_as_criu(path, tmpfs, image) == 0
    archive = image.read_bytes()
    # Stored, not compressed: the text file is in the archive as it is, and gzip reads it.
    assert b"kept\n" * 1000 in archive
    assert len(gzip.decompress(archive)) > (3 << 20) + 5000
    restore_as_criu(image, tmp_path / "restored")
    assert files(tmp_path / "restored") == files(tmpfs)
    assert oct(os.stat(tmp_path / "restored" / "sub" / "text").st_mode & 0o777) == "0o640"


def test_a_small_tmpfs_goes_to_the_system_tar_and_gzip(tmp_path, tmpfs):
    path = dump_path(str(tmp_path / "bin"), threshold_kb=1 << 20)
    image = tmp_path / "tmpfs-dev-64.tar.gz.img"
    assert dump_as_criu(path, tmpfs, image) == 0
    assert b"kept\n" * 1000 not in image.read_bytes()  # compressed by gzip
    restore_as_criu(image, tmp_path / "restored")
    assert files(tmp_path / "restored") == files(tmpfs)


def test_a_failing_tar_fails_the_dump_on_either_path(tmp_path, tmpfs):
    for threshold_kb in (1024, 1 << 20):
        path = dump_path(str(tmp_path / ("bin%d" % threshold_kb)), threshold_kb=threshold_kb)
        directory = os.open(str(tmpfs), os.O_RDONLY | os.O_DIRECTORY)
        try:
            proc = subprocess.run(["tar"] + CRIU_ARGS + ["no-such-file"], stdin=directory, capture_output=True,
                                  env=dict(os.environ, PATH=path), check=False)
        finally:
            os.close(directory)
        assert proc.returncode != 0, threshold_kb


def test_the_shim_is_private_and_other_calls_pass_through(tmp_path):
    path = dump_path(str(tmp_path / "bin"))
    assert path.startswith(str(tmp_path / "bin") + os.pathsep)
    assert os.stat(tmp_path / "bin").st_mode & 0o077 == 0
    version = subprocess.run(["tar", "--version"], capture_output=True, text=True, env=dict(os.environ, PATH=path),
                             check=True)
    assert "tar" in version.stdout


def test_no_shim_without_a_system_tar(tmp_path):
    assert dump_path(str(tmp_path / "bin"), path=str(tmp_path / "empty")) is None
