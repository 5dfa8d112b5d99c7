"""The project's stdout callback: a task that waits on purpose does not print FAILED."""

import os
import subprocess

from module_runner import ROOT

PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait for the second check
      ansible.builtin.command: "true"
      register: checked
      until: checked.attempts | default(0) > 1
      retries: 3
      delay: 0
      changed_when: false
"""


def test_a_wait_reads_as_a_wait(tmp_path):
    (tmp_path / "wait.yml").write_text(PLAYBOOK)
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), str(tmp_path / "wait.yml")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "waiting [localhost] Wait for the second check (check 1, up to 4)" in proc.stdout
    assert "FAILED" not in proc.stdout
