"""Where CRIU works during a restore through the edge-migrate runtime: a private directory
outside the migration's directory (where other edges may write), named beside the marker."""

import os
import shutil

import pytest
from ansible.module_utils.edge_docker import place_images_marker, restore_work_dir
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_private_dir import private_work_dir


@pytest.fixture
def images(tmp_path):
    path = tmp_path / "migration" / "final"
    path.mkdir(parents=True)
    yield str(path)
    shutil.rmtree(restore_work_dir(str(path)), ignore_errors=True)


def test_the_marker_names_a_private_directory_outside_the_migrations(tmp_path, images):
    placed = place_images_marker(images, str(tmp_path / "docker"), "c0ffee", "final")
    with open(os.path.join(placed, "edge-migrate-work")) as handle:
        work = handle.read()
    assert work == restore_work_dir(images) and not work.startswith(str(tmp_path))
    info = os.lstat(work)
    assert os.path.isdir(work) and not os.path.islink(work) and info.st_mode & 0o777 == 0o700
    # The same images give the same directory, for whoever reads CRIU's log and statistics later.
    assert place_images_marker(images, str(tmp_path / "docker"), "c0ffee", "final") == placed
    assert restore_work_dir(images) != restore_work_dir(images + "2")


def test_a_symlink_or_an_open_directory_in_its_place_is_refused(tmp_path, images):
    work = restore_work_dir(images)
    os.symlink(str(tmp_path), work)
    try:
        with pytest.raises(EdgeError, match="not a private directory"):
            private_work_dir(work)
    finally:
        os.unlink(work)
    os.mkdir(work, 0o700)
    os.chmod(work, 0o777)
    with pytest.raises(EdgeError, match="not a private directory"):
        place_images_marker(images, str(tmp_path / "docker"), "c0ffee", "final")
