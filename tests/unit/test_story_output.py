"""The project's stdout callback: a task that waits on purpose does not print FAILED."""

import os
import re
import subprocess
import sys

from module_runner import ROOT

sys.path.insert(0, os.path.join(ROOT, "callback_plugins"))
from edge_story import describe_progress, starts_a_second  # noqa: E402

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


PROGRESS_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  vars:
    ansible_async_dir: %s
  tasks:
    - name: Something long in the background
      ansible.builtin.command: sleep 8
      async: 60
      poll: 0
      register: job
      changed_when: false

    - name: The copy on its way
      edge_sync_progress:
        results_file: "{{ job.results_file }}"
        progress_file: %s
        wait: 1
      register: progress
      until: progress.finished
      retries: 60
      delay: 0
"""


def test_a_transfer_in_the_background_shows_its_progress_until_it_ends(tmp_path):
    progress = tmp_path / "warmup.progress"
    progress.write_text('{"bytes": 33554432, "total_bytes": 268435456, "percent": 12, "rate": "2.34MB/s", '
                        '"time_left": "0:01:20", "done": false, "pid": 1}')
    (tmp_path / "progress.yml").write_text(PROGRESS_PLAYBOOK % (tmp_path / "async", progress))
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), str(tmp_path / "progress.yml")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("waiting [localhost] The copy on its way")]
    assert len(lines) >= 2, proc.stdout  # the job runs 8 s, watched a second at a time
    assert lines[0].endswith(": 33.6 of 268.4 MB (12%), 2.34MB/s, 0:01:20 left"), lines[0]
    assert "FAILED" not in proc.stdout


def test_progress_from_an_edge_is_shown_only_when_it_looks_like_figures():
    assert describe_progress({"bytes": 5_000_000}) == ": 5.0 MB"
    assert describe_progress({"bytes": 9, "total_bytes": 9, "percent": 100, "time_left": "0:02:04"}).endswith(
        "(100%), took 0:02:04")
    assert describe_progress({"bytes": "5", "percent": 3}) == ""
    assert describe_progress(["bytes"]) == ""
    assert describe_progress({"bytes": 10 ** 400}) == "" and describe_progress({"bytes": True}) == ""
    assert describe_progress({"bytes": 1, "rate": "9" * 5000}) == ": 0.0 MB"
    shown = describe_progress({"bytes": 1, "rate": "\x1b[2J{{ lookup('pipe', 'id') }}", "time_left": "0:00:01"})
    assert "lookup" not in shown and "\x1b" not in shown and shown.endswith("0:00:01 left")


def test_a_task_polling_faster_than_once_a_second_prints_a_line_a_second():
    assert [n for n in range(1, 16) if starts_a_second(0.2, n)] == [1, 5, 10, 15]
    assert all(starts_a_second(delay, n) for delay in (1, 2.5, 0, "1", None, "x") for n in range(1, 5))
