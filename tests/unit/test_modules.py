"""Each module's argument handling and error paths, run in-process without root or daemons."""

import os
import shutil

import pytest

NO_DOCKER = "unix:///nonexistent/docker.sock"
needs_tools = pytest.mark.skipif(not (shutil.which("xdelta3") and shutil.which("rsync")),
                                 reason="xdelta3 and rsync are installed by make test")


def images(path, seed):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "pages-1.img"), "wb") as handle:
        handle.write(seed * (1 << 18))
    with open(os.path.join(path, "core-1.img"), "wb") as handle:
        handle.write(seed)


@pytest.mark.parametrize("name,args", [
    ("edge_container_info", {"name": "web", "docker_host": NO_DOCKER}),
    ("edge_checkpoint", {"name": "web", "checkpoint_dir": "/tmp/x", "checkpoint_name": "b", "docker_host": NO_DOCKER}),
    ("edge_container", {"name": "web", "docker_host": NO_DOCKER}),
    ("edge_restore", {"name": "web", "config": {"Image": "i"}, "docker_host": NO_DOCKER}),
])
def test_unreachable_docker_is_a_clear_failure(run_module, name, args):
    outcome, result = run_module(name, args)
    assert outcome == "fail"
    assert "cannot reach the Docker Engine at %s" % NO_DOCKER in result["msg"]
    assert result["cmd"] == "GET /_ping"


@pytest.mark.parametrize("name,args,message", [
    ("edge_checkpoint", {"name": "web"}, "missing required arguments"),
    ("edge_checkpoint", {"name": "web", "checkpoint_dir": "/w", "checkpoint_name": "base", "push": {"dest_dir": "/d"}},
     "push: missing required arguments: dest_host, status_file"),
    ("edge_checkpoint", {"name": "web", "checkpoint_dir": "/w", "checkpoint_name": "base",
                         "push": {"dest_dir": "/d", "dest_host": "h", "status_file": "/w/s", "time_limit": "soon"}},
     "push: "),
    ("edge_freeze", {"name": "web", "checkpoint_dir": "/w", "dest_host": "h", "dest_dir": "/d"},
     "mode is delta but all of the following are missing: base_dir, delta_dir"),
    ("edge_freeze", {"name": "web", "checkpoint_dir": "/w", "dest_host": "h", "dest_dir": "/d", "mode": "zip"},
     "value of mode must be one of: delta, whole"),
    ("edge_restore", {"name": "web", "checkpoint_path": "/c", "patch_base_dir": "/b"},
     "parameters are required together: patch_base_dir, patch_delta_dir"),
    ("edge_restore", {"name": "web", "state": "gone"}, "value of state must be one of: created, started"),
    ("edge_sync", {"src": "/w"}, "missing required arguments: dest_dir, dest_host"),
    ("edge_container", {"name": "web", "state": "paused"}, "value of state must be one of: absent, stopped"),
    ("edge_report", {"request": {"service": "s"}, "results": {}}, "the report request lacks migration_id"),
])
def test_bad_arguments_are_rejected(run_module, name, args, message):
    outcome, result = run_module(name, args)
    assert outcome == "fail"
    assert message in result["msg"]


def test_delta_rejects_a_missing_base(run_module, tmp_path):
    outcome, result = run_module("edge_delta", {"base_dir": str(tmp_path / "nope"), "target_dir": str(tmp_path),
                                                "delta_dir": str(tmp_path / "d")})
    assert outcome == "fail" and "base_dir %s is not a directory" % (tmp_path / "nope") in result["msg"]


@needs_tools
def test_delta_then_patch_round_trip(run_module, tmp_path):
    images(str(tmp_path / "base"), b"a" * 4)
    images(str(tmp_path / "final"), b"a" * 3 + b"b")
    outcome, delta = run_module("edge_delta", {"base_dir": str(tmp_path / "base"),
                                               "target_dir": str(tmp_path / "final"),
                                               "delta_dir": str(tmp_path / "delta")})
    assert outcome == "exit" and delta["changed"] and delta["files"] == 2
    assert delta["bytes"] < delta["target_bytes"]
    outcome, patch = run_module("edge_patch", {"base_dir": str(tmp_path / "base"), "delta_dir": str(tmp_path / "delta"),
                                               "dest_dir": str(tmp_path / "out")})
    assert outcome == "exit" and patch["files"] == 2 and patch["bytes"] == delta["target_bytes"]
    assert (tmp_path / "out/pages-1.img").read_bytes() == (tmp_path / "final/pages-1.img").read_bytes()


@needs_tools
def test_patch_refuses_a_corrupted_delta_and_leaves_nothing(run_module, tmp_path):
    images(str(tmp_path / "base"), b"a" * 4)
    images(str(tmp_path / "final"), b"c" * 4)
    run_module("edge_delta", {"base_dir": str(tmp_path / "base"), "target_dir": str(tmp_path / "final"),
                              "delta_dir": str(tmp_path / "delta")})
    (tmp_path / "delta/core-1.img").write_bytes(b"zzzz")
    outcome, result = run_module("edge_patch", {"base_dir": str(tmp_path / "base"),
                                                "delta_dir": str(tmp_path / "delta"),
                                                "dest_dir": str(tmp_path / "out")})
    assert outcome == "fail" and "checksum mismatch for core-1.img" in result["msg"]
    assert not (tmp_path / "out").exists()


def test_delta_check_mode_writes_nothing(run_module, tmp_path):
    images(str(tmp_path / "base"), b"a")
    outcome, result = run_module("edge_delta", {"base_dir": str(tmp_path / "base"),
                                                "target_dir": str(tmp_path / "base"),
                                                "delta_dir": str(tmp_path / "delta"), "_ansible_check_mode": True})
    assert outcome == "exit" and result["changed"]
    assert not (tmp_path / "delta").exists()


def test_patch_check_mode_looks_for_what_it_would_rebuild_from(run_module, tmp_path):
    images(str(tmp_path / "base"), b"a")
    args = {"base_dir": str(tmp_path / "base"), "delta_dir": str(tmp_path / "delta"),
            "dest_dir": str(tmp_path / "out"), "_ansible_check_mode": True}
    outcome, result = run_module("edge_patch", args)
    assert outcome == "fail" and "MANIFEST.json missing" in result["msg"]
    run_module("edge_delta", {"base_dir": str(tmp_path / "base"), "target_dir": str(tmp_path / "base"),
                              "delta_dir": str(tmp_path / "delta")})
    outcome, result = run_module("edge_patch", args)
    assert outcome == "exit" and result["changed"]
    assert not (tmp_path / "out").exists()


def test_sync_rejects_a_missing_source(run_module, tmp_path):
    outcome, result = run_module("edge_sync", {"src": str(tmp_path / "nope"), "dest_host": "h", "dest_dir": "/d"})
    assert outcome == "fail" and "is not a directory on this host" in result["msg"]


@needs_tools
def test_sync_to_an_unreachable_host_fails_with_rsync_details(run_module, tmp_path):
    images(str(tmp_path / "base"), b"a")
    outcome, result = run_module("edge_sync", {"src": str(tmp_path / "base"), "dest_host": "127.0.0.1",
                                               "ssh_port": 1, "dest_dir": "/tmp/never", "timeout": 5})
    assert outcome == "fail"
    assert "rsync from %s to 127.0.0.1:/tmp/never failed" % (tmp_path / "base") in result["msg"]
    assert result["rc"] != 0 and result["cmd"].startswith("rsync ") and result["stderr"]


def test_report_check_mode_does_not_write(run_module, tmp_path):
    request = {"migration_id": "m", "service": "s", "source": "a", "destination": "b", "strategy": "delta",
               "outcome": "migrated", "started_at": 1, "finished_at": 2}
    outcome, result = run_module("edge_report", {"request": request, "results": {}, "reports_dir": str(tmp_path / "r"),
                                                 "_ansible_check_mode": True})
    assert outcome == "exit" and not result["changed"] and result["summary"]
    assert not (tmp_path / "r").exists()


def test_the_report_action_writes_what_the_module_writes_in_the_controllers_process(run_module, tmp_path):
    import importlib.util
    from unittest import mock

    from ansible.errors import AnsibleActionFail
    path = os.path.join(os.path.dirname(__file__), "..", "..", "action_plugins", "edge_report.py")
    spec = importlib.util.spec_from_file_location("edge_report_action", path)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)

    def run(args, check_mode=False):
        task = mock.MagicMock(args=args, async_val=0, check_mode=check_mode, diff=False)
        connection = mock.MagicMock()
        connection._shell.tmpdir = None
        return plugin.ActionModule(task, connection, mock.MagicMock(), None, None, None).run(task_vars={})

    request = {"migration_id": "m", "service": "s", "source": "a", "destination": "b", "strategy": "delta",
               "outcome": "migrated", "started_at": 1, "finished_at": "2.5"}
    result = run({"request": request, "results": {}, "reports_dir": str(tmp_path / "a")})
    assert result["changed"] and result["report"]["total_s"] == 1.5 and os.path.exists(result["path"])
    outcome, by_module = run_module("edge_report", {"request": request, "results": {},
                                                    "reports_dir": str(tmp_path / "m")})
    assert outcome == "exit" and by_module["summary"] == result["summary"]
    assert open(by_module["csv_path"]).read().splitlines()[0] == open(result["csv_path"]).read().splitlines()[0]
    checked = run({"request": request, "results": {}, "reports_dir": str(tmp_path / "c")}, check_mode=True)
    assert not checked["changed"] and "path" not in checked and not (tmp_path / "c").exists()
    with pytest.raises(AnsibleActionFail, match="the report request lacks migration_id"):
        run({"request": {"service": "s"}, "results": {}})
    with pytest.raises(AnsibleActionFail, match="results"):
        run({"request": request})


def test_a_restore_result_does_not_repeat_the_container_environment(capsys):
    """The result is what a background job's status file holds on the destination: with the real
    exit and fail paths of AnsibleModule (not the test doubles), no value of the configuration."""
    import json

    from ansible.module_utils.testing import patch_module_args
    from module_runner import load_module

    secret = "DB_PASSWORD=hunter2-do-not-leak"
    module = load_module("edge_restore")
    with patch_module_args({"name": "web", "config": {"Image": "i", "Env": [secret]}, "docker_host": NO_DOCKER}):
        with pytest.raises(SystemExit):
            module.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    assert result["failed"] and "cannot reach the Docker Engine" in result["msg"]
    assert result["invocation"]["module_args"]["name"] == "web"
    assert "hunter2" not in output and result["invocation"]["module_args"]["config"] == "(left out of results)"
