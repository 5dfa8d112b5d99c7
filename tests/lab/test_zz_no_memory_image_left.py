"""Runs after every other lab test (pytest takes the files in name order): no memory image
is left anywhere on the host's file system, containerd's temporary directories included, and
no background job's status file left on an edge holds a container's configuration."""

import os

import pytest
from labtools import job_files_naming

pytestmark = pytest.mark.lab

# Pseudo file systems, and pytest's own temporary directories (unit tests make images there).
SKIPPED = ("/proc", "/sys", "/dev")


def memory_images_on_the_host():
    found = []
    for root, dirs, files in os.walk("/", onerror=None):
        if root.startswith(SKIPPED) or os.path.basename(root).startswith("pytest-of-"):
            dirs[:] = []
            continue
        found += [os.path.join(root, name) for name in files if name.startswith("pages-") and name.endswith(".img")]
    return found


def test_no_memory_image_left_anywhere_on_the_host(lab):
    assert memory_images_on_the_host() == []


def test_no_job_status_file_holds_a_container_configuration(lab):
    """Status files can stay behind (a controller killed in a test, a prepared migration left to
    expire); what every test's containers were given (environment, mounts) must not be in them."""
    assert job_files_naming('"HostConfig"') + job_files_naming('"Env"') == []
