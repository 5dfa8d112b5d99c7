"""edge_job: the result of a background job, waited for and taken in one call, its status
file (which holds what the job was given) removed as it is read."""

import json
import threading
import time

STARTED = {"started": 1, "finished": 0, "ansible_job_id": "j123.45"}


def job_dir(tmp_path, content=None):
    async_dir = tmp_path / "async"
    async_dir.mkdir()
    if content is not None:
        (async_dir / "j123.45").write_text(json.dumps(content))
    return async_dir


def test_a_running_job_is_not_finished_and_keeps_its_file(run_module, tmp_path):
    async_dir = job_dir(tmp_path, STARTED)
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0.1})
    assert outcome == "exit" and result["finished"] is False and result["erased"] is False
    assert (async_dir / "j123.45").exists()


def test_an_ended_job_gives_its_result_and_its_file_goes(run_module, tmp_path):
    async_dir = job_dir(tmp_path, {"changed": True, "running": True, "from_checkpoint": True,
                                   "config": {"Env": ["TOKEN=secret"]}})
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0})
    assert outcome == "exit" and result["finished"] is True and result["erased"] is True
    assert result["from_checkpoint"] is True and result["changed"] is True and result["ansible_job_id"] == "j123.45"
    assert not (async_dir / "j123.45").exists()
    # Asked again, the job is gone: an error that ends an `until` loop, not a wait for ever.
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0})
    assert outcome == "fail" and result["finished"] is True and "could not find job" in result["msg"]


def test_a_failed_job_fails_with_its_own_message_and_its_file_goes(run_module, tmp_path):
    async_dir = job_dir(tmp_path, {"failed": True, "msg": "CRIU restore failed", "cmd": "docker start", "rc": 1,
                                   "stderr": "Error (criu/cr-restore.c)"})
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0})
    assert outcome == "fail" and result["finished"] is True and result["erased"] is True
    assert (result["msg"], result["cmd"], result["rc"]) == ("CRIU restore failed", "docker start", 1)
    assert not (async_dir / "j123.45").exists()


def test_check_mode_reads_the_result_and_removes_nothing(run_module, tmp_path):
    async_dir = job_dir(tmp_path, {"changed": False, "rc": 0})
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0,
                                              "_ansible_check_mode": True})
    assert outcome == "exit" and result["finished"] is True and result["erased"] is False
    assert (async_dir / "j123.45").exists()


def test_erase_false_keeps_the_file(run_module, tmp_path):
    async_dir = job_dir(tmp_path, {"rc": 0})
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 0,
                                              "erase": False})
    assert outcome == "exit" and result["finished"] is True and result["erased"] is False
    assert (async_dir / "j123.45").exists()


def test_what_is_not_a_job_id_is_refused_before_any_file_is_touched(run_module, tmp_path):
    async_dir = job_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text(json.dumps({"rc": 0}))
    for jid in ("../victim", "/etc/passwd", "j123.45/..", "j123.45\n", "", "j123", "x123.45"):
        outcome, result = run_module("edge_job", {"jid": jid, "async_dir": str(async_dir), "wait": 0})
        assert outcome == "fail" and "not a background job's id" in result["msg"], jid
        assert result["finished"] is True  # an `until` loop on it ends at once
    assert victim.exists()


def test_the_wait_ends_as_soon_as_the_job_does(run_module, tmp_path):
    async_dir = job_dir(tmp_path, STARTED)
    status = async_dir / "j123.45"
    threading.Timer(0.3, lambda: status.write_text(json.dumps({"rc": 0}))).start()
    begin = time.monotonic()
    outcome, result = run_module("edge_job", {"jid": "j123.45", "async_dir": str(async_dir), "wait": 20})
    elapsed = time.monotonic() - begin
    assert outcome == "exit" and result["finished"] is True and result["rc"] == 0
    assert 0.25 < elapsed < 5, elapsed
