"""A long transfer's progress: rsync's progress2 figures kept in a file while it runs
(module_utils/edge_progress) and read back by edge_sync_progress."""

import json
import os

import pytest
from ansible.module_utils import edge_progress

PROGRESS2 = ("\r          32,768   0%    0.00kB/s    0:00:00  \r     33,554,432  12%    2.34MB/s    0:01:20"
             "  \r    268,435,456 100%   10.10MB/s    0:00:25 (xfr#3, to-chk=0/4)\n")


def test_the_last_figures_rsync_printed():
    assert edge_progress.parse_progress(PROGRESS2) == {"bytes": 268435456, "percent": 100, "rate": "10.10MB/s",
                                                       "time_left": "0:00:25"}
    assert edge_progress.parse_progress("\r".join(PROGRESS2.split("\r")[:3]))["bytes"] == 33554432
    assert edge_progress.parse_progress("Number of files: 4\n") is None


def test_a_real_rsync_leaves_its_figures_and_its_end_in_the_file(tmp_path):
    src, dst, progress = tmp_path / "src", tmp_path / "dst", tmp_path / "copy.progress"
    src.mkdir()
    for index in range(3):
        (src / ("pages-%d.img" % index)).write_bytes(os.urandom(1 << 20))
    run = edge_progress.progress_runner(str(progress), total_bytes=3 << 20)
    rc, out, err = run(["rsync", "-a", "--stats", "--info=progress2", str(src) + "/", str(dst) + "/"])
    assert rc == 0, err
    assert "\r" not in out and "Total bytes sent:" in out
    figures = json.loads(progress.read_text())
    assert figures["done"] is True and figures["rc"] == 0
    assert figures["bytes"] == 3 << 20 and figures["total_bytes"] == 3 << 20 and figures["percent"] == 100
    assert oct(progress.stat().st_mode & 0o777) == "0o600"
    assert (dst / "pages-2.img").read_bytes() == (src / "pages-2.img").read_bytes()


def test_a_failed_rsync_ends_the_file_with_its_rc(tmp_path):
    progress = tmp_path / "copy.progress"
    rc, _out, err = edge_progress.progress_runner(str(progress))(["rsync", "-a", str(tmp_path / "none") + "/",
                                                                  str(tmp_path / "dst")])
    assert rc != 0 and "none" in err
    assert json.loads(progress.read_text())["rc"] == rc


def test_progress_reports_the_job_running_then_ended(run_module, tmp_path):
    progress, results = tmp_path / "copy.progress", tmp_path / "async" / "123.45"
    results.parent.mkdir()
    edge_progress.write_progress(str(progress), {"bytes": 10, "percent": 1, "pid": 9, "secret": "x"})
    args = {"results_file": str(results), "progress_file": str(progress), "wait": 0.3}
    # async_wrapper may return before its job has written the file: not ended
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "exit" and result["finished"] is False and result["changed"] is False
    results.write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "123.45"}))
    outcome, result = run_module("edge_sync_progress", args)
    assert result["finished"] is False and result["progress"] == {"bytes": 10, "percent": 1}
    results.write_text(json.dumps({"rc": 0, "bytes_sent": 10}))  # the module's result
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "exit" and result["finished"] is True and result["job"] == {"rc": 0, "bytes_sent": 10}
    # A job that failed fails the watch with its own message, command and rc.
    results.write_text(json.dumps({"failed": True, "msg": "rsync failed", "cmd": "rsync -a", "rc": 12,
                                   "stderr": "connection unexpectedly closed"}))
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "fail" and result["finished"] is True
    assert (result["msg"], result["cmd"], result["rc"]) == ("rsync failed", "rsync -a", 12)
    assert result["stderr"] == "connection unexpectedly closed" and result["job"]["failed"] is True
    results.write_text("[1]")
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "fail" and "no result" in result["msg"]


def test_progress_returns_as_soon_as_the_job_ends(run_module, tmp_path):
    import threading
    import time
    results = tmp_path / "job"
    results.write_text(json.dumps({"started": 1, "finished": 0}))
    threading.Timer(0.3, lambda: results.write_text(json.dumps({"rc": 0}))).start()
    begin = time.monotonic()
    outcome, result = run_module("edge_sync_progress", {"results_file": str(results), "wait": 30,
                                                        "progress_file": str(tmp_path / "none")})
    assert outcome == "exit" and result["finished"] is True and result["progress"] == {}
    assert time.monotonic() - begin < 10
    assert result["erased"] is True and not results.exists()


def test_a_push_keeps_its_status_only_in_a_private_directory(tmp_path):
    """The status file names the session stop_push_job ends: a directory others may write to
    (here open to all) is refused before anything starts."""
    from ansible.module_utils.edge_errors import EdgeError
    from ansible.module_utils.edge_push_job import start_push_job
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(EdgeError, match="not a private directory"):
        start_push_job(str(shared / "warmup.status"), str(src), {"progress_file": None})
    with pytest.raises(EdgeError, match="not a private directory"):
        start_push_job(str(tmp_path / "jobs" / "warmup.status"), str(src), {"progress_file": str(shared / "p")})
    assert os.listdir(shared) == [] and os.stat(tmp_path / "jobs").st_mode & 0o777 == 0o700


def test_a_progress_file_that_cannot_be_written_does_not_stop_the_copy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 1000)
    run = edge_progress.progress_runner(str(tmp_path / "gone" / "copy.progress"))
    rc, _out, err = run(["rsync", "-a", "--info=progress2", str(src) + "/", str(tmp_path / "dst") + "/"])
    assert rc == 0, err
    assert (tmp_path / "dst" / "f").exists()


def test_stop_ends_nothing_that_has_ended_and_does_not_fail_on_a_failed_push(run_module, tmp_path):
    """stop on a push that ended (successfully or not) or never wrote its status: nothing is
    ended, nothing changed, the watch does not fail (the rollback asks it whatever happened)."""
    progress, results = tmp_path / "copy.progress", tmp_path / "warmup.status"
    args = {"results_file": str(results), "progress_file": str(progress), "stop": True}
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "exit" and (result["changed"], result["stopped"]) == (False, False)
    results.write_text(json.dumps({"failed": True, "finished": 1, "msg": "rsync failed"}))
    progress.write_text("{}")
    outcome, result = run_module("edge_sync_progress", dict(args, erase=False))
    assert outcome == "exit" and (result["changed"], result["stopped"], result["finished"]) == (False, False, True)
    assert result["job"]["msg"] == "rsync failed" and results.exists() and progress.exists()
    # Erased once read: nothing of the push is left for a later call to act on.
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "exit" and (result["stopped"], result["finished"], result["erased"]) == (False, True, True)
    assert result["changed"] is True and not results.exists() and not progress.exists()
    # A status without the process's session (a job of async_wrapper's): not this module's to end.
    results.write_text(json.dumps({"started": 1, "finished": 0, "pid": os.getpid()}))
    outcome, result = run_module("edge_sync_progress", args)
    assert outcome == "exit" and (result["stopped"], result["finished"]) == (False, False)
