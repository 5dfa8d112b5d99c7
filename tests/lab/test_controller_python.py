"""The controller's code on Debian 13: the unit tests run with the trixie system edge's Python
3.13 and trixie's own packages of ansible-core, pytest, Docker's SDK and jinja2 (apt inside
the edge, through the lab's package cache), on a copy of the repository's files."""

import os
import shutil
import subprocess

import pytest
from labtools import ROOT, run, system_edge, system_edges

pytestmark = pytest.mark.lab

PACKAGES = ["python3-pytest", "python3-docker", "python3-jinja2", "python3-yaml", "python3-matplotlib", "ansible-core",
            "rsync"]
# Checks of the lint tools' verdicts (ruff, ansible-lint): they run with the pinned tools of the
# controller's virtualenv, not with a Python of the controller's release.
LINT_CHECKS = ["tests/unit/test_docs.py::test_ansible_lint_production_profile", "tests/unit/test_docs.py::test_ruff",
               "tests/unit/test_service_proxy.py::test_the_proxy_script_passes_ruff"]
# The command-line tools the unit tests call by the virtualenv's paths.
TOOLS = {"python": "/usr/bin/python3", "ansible-playbook": "/usr/bin/ansible-playbook",
         "ansible-galaxy": "/usr/bin/ansible-galaxy", "ansible-doc": "/usr/bin/ansible-doc",
         "ansible-inventory": "/usr/bin/ansible-inventory"}
COPY = "opt/edge-migrate-src"


def in_edge(name, *command, timeout=600):
    return run([os.path.join(ROOT, "lab", "lab"), "exec", name, "--", *command], timeout=timeout)


def test_the_unit_tests_pass_with_debian_13s_python():
    edges = system_edges()
    trixie = edges[system_edge(edges, "trixie")]
    in_edge(trixie["name"], "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
            "--no-install-recommends", *PACKAGES)
    copy = os.path.join(trixie["root"], COPY)
    shutil.rmtree(copy, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(copy, name))
    os.makedirs(os.path.join(copy, ".venv", "bin"))
    for tool, target in TOOLS.items():
        os.symlink(target, os.path.join(copy, ".venv", "bin", tool))
    try:
        version = in_edge(trixie["name"], "python3", "--version").stdout
        assert version.startswith("Python 3.13"), version
        proc = in_edge(trixie["name"], "sh", "-c", "cd /%s && python3 -m pytest -q -p no:cacheprovider tests/unit %s"
                       % (COPY, " ".join("--deselect " + check for check in LINT_CHECKS)), timeout=1200)
        assert " passed" in proc.stdout and " failed" not in proc.stdout, proc.stdout[-3000:]
    finally:
        shutil.rmtree(copy, ignore_errors=True)
