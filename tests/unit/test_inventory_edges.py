"""migrate.yml against an inventory without the group `edges`: told so before any host is asked."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_an_inventory_without_edges_is_named_before_anything_is_asked(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    edge_hosts:\n      hosts:\n        far-edge:\n"
                         "          ansible_host: 192.0.2.1\n")
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "migrate.yml", "-i", str(inventory),
                           "-e", "service=openface"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp")))
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())
    assert "has no host in the group edges" in said and str(inventory) in said, proc.stdout[-2000:]
    assert "Find the service on the edges" not in proc.stdout
