"""The lab's system edges (lab/labsystems.py): releases chosen by name, and an inventory
that Ansible reads with each edge's release and engine settings."""

import json
import os
import subprocess
import sys

import pytest
from module_runner import ROOT

sys.path.insert(0, os.path.join(ROOT, "lab"))
import labsystems  # noqa: E402
from labcore import LabError  # noqa: E402


def test_releases_are_named_and_checked():
    assert labsystems.parse_releases("trixie, sid") == ["trixie", "sid"]
    assert labsystems.parse_releases("") == []
    with pytest.raises(LabError, match="unknown release jessie"):
        labsystems.parse_releases("trixie,jessie")


def test_each_system_edge_has_its_own_address_namespace_and_root():
    a, b = labsystems.SystemEdge(1, "trixie", "10.77.0"), labsystems.SystemEdge(2, "sid", "10.77.0")
    assert (a.address, b.address) == ("10.77.0.31", "10.77.0.32")
    assert a.netns != b.netns and a.root != b.root and a.cgroup_parent != b.cgroup_parent
    # the controller reaches the edge's socket under its root; /var/run is a link to /run inside
    assert str(a.socket) == "/var/lib/edgelab/sys1/root/run/docker.sock"
    assert a.inside(["true"])[:3] == ["nsenter", "--net=/run/netns/edgelab-sys1", "--mount=/run/edgelab/mntns/sys1"]


def test_inventory_gives_ansible_each_edge_with_its_engine_settings(tmp_path):
    systems = [labsystems.SystemEdge(1, "trixie", "10.77.0"), labsystems.SystemEdge(2, "sid", "10.77.0")]
    text = labsystems.inventory_text(systems, "10.77.0.1:5000", "/k", "/known", json.dumps)
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    inventory = json.loads(proc.stdout)
    assert inventory["edges"]["hosts"] == ["sys1", "sys2"]
    sys2 = inventory["_meta"]["hostvars"]["sys2"]
    assert sys2["lab_release"] == "sid" and sys2["ansible_host"] == "10.77.0.32"
    assert sys2["edge_docker_daemon_settings"] == {"cgroup-parent": "/edgelab-sys2",
                                                   "insecure-registries": ["10.77.0.1:5000"]}
    assert sys2["ansible_python_interpreter"] == "/usr/bin/python3"
