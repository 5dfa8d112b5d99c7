"""The project's stdout callback: a task that waits on purpose does not print FAILED."""

import os
import re
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


def test_results_print_as_yaml_with_verbose(tmp_path):
    """The tests and people read `-v` results as YAML (`callback_result_format` in ansible.cfg);
    the callback must keep the default callback's result_format option."""
    (tmp_path / "debug.yml").write_text("""- hosts: localhost
  gather_facts: false
  tasks:
    - name: Say a value
      ansible.builtin.debug:
        msg: {layers_total: 2}
""")
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-v", str(tmp_path / "debug.yml")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^\s+layers_total: 2$", proc.stdout, re.MULTILINE), proc.stdout
