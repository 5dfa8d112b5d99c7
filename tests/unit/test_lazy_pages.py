"""How edge_restore reads the lazy-pages daemon's end (the exit code the edge-migrate runtime
writes) and stops a daemon no restore will use; the restore itself is a lab test."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import module_runner


def restore_module():
    return module_runner.load_module("edge_restore")


def test_the_daemons_exit_code_is_read_once_written(tmp_path):
    restore = restore_module()
    assert restore.lazy_pages_rc(str(tmp_path), 0.05) is None  # still running (or never started)
    (tmp_path / "lazy-pages.rc").write_text("0\n")
    assert restore.lazy_pages_rc(str(tmp_path), 0.05) == 0
    (tmp_path / "lazy-pages.rc").write_text("124\n")  # timeout(1) killed it
    assert restore.lazy_pages_rc(str(tmp_path), 0.05) == 124
    (tmp_path / "lazy-pages.rc").write_text("what\n")
    assert restore.lazy_pages_rc(str(tmp_path), 0.05) == -1


def test_only_a_lazy_pages_process_is_stopped(tmp_path):
    restore = restore_module()
    work = pathlib.Path(restore.restore_work_dir(str(tmp_path / "final")))
    work.mkdir()
    bystander = subprocess.Popen(["sleep", "30"])
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "lazy-pages"])
    try:
        for _ in range(500):  # until the child runs the program (before, /proc shows pytest's argv)
            if b"lazy-pages" in open("/proc/%d/cmdline" % daemon.pid, "rb").read():
                break
            time.sleep(0.01)
        (work / "lazy-pages.pid").write_text("%d\n" % bystander.pid)
        restore.stop_lazy_pages(str(tmp_path / "final"))
        assert bystander.poll() is None
        (work / "lazy-pages.pid").write_text("%d\n" % daemon.pid)
        restore.stop_lazy_pages(str(tmp_path / "final"))
        assert daemon.wait(timeout=5) != 0
        (work / "lazy-pages.pid").write_text("not a pid\n")
        restore.stop_lazy_pages(str(tmp_path / "final"))  # nothing to do, no error
    finally:
        bystander.kill()
        daemon.kill()
        shutil.rmtree(work)


def test_a_restore_whose_runtime_started_no_daemon_is_not_waited_for(tmp_path):
    # An edge-migrate runtime from before lazy restores ignores the option: runc restored every
    # page, there is no daemon to wait for and nothing to restore again (no engine is asked).
    restore = restore_module()
    work = restore.restore_work_dir(str(tmp_path / "final"))
    os.mkdir(work)
    result = {}
    try:
        restore.settle_lazy_pages(None, None, {"Id": "c0ffee"}, str(tmp_path / "final"), {"wait_timeout": 30}, None,
                                  result)
    finally:
        os.rmdir(work)
    assert "prepare_edges.yml" in result["lazy_pages"]["skipped"]
