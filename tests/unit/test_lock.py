"""The migration lock on the edges: one run at a time across controllers, a stale lock taken
over by exactly one of many runs, a fleet child's own process named."""

import json
import multiprocessing
import os
import time

import pytest
from ansible.module_utils import edge_lock
from ansible.module_utils.edge_lock import LockError, controller_identity, release, stale_reason, take


def owner(name="ctl-a", boot="boot-1", pid=None, running=None, checked_at=None):
    pid = pid or os.getpid()
    return {"controller": name, "boot_id": boot, "pid": pid, "pid_start": 7,
            "checked_at": time.time() if checked_at is None else checked_at,
            "running": ["%d:7" % pid] if running is None else running}


def test_one_run_holds_the_lock_and_the_other_is_told_who(tmp_path):
    first = owner(pid=1111, running=["1111:7", "2222:7"])
    record, stale = take(str(tmp_path), "openface", "openface-1", first)
    assert stale is None and record["migration_id"] == "openface-1"
    assert oct(os.stat(tmp_path / "locks" / "openface.lock").st_mode & 0o777) == "0o600"
    # Another controller, or another run of this one whose process is alive: held.
    for other in (owner("ctl-b", "boot-9", 3333), owner(pid=2222, running=["1111:7", "2222:7"])):
        with pytest.raises(LockError) as held:
            take(str(tmp_path), "openface", "openface-2", other)
        assert "openface is already being migrated: migration openface-1 from ctl-a (ansible-playbook pid 1111" \
            in str(held.value) and held.value.holder["controller"] == "ctl-a"
    # Taking it again is idempotent; only its holder releases it.
    assert take(str(tmp_path), "openface", "openface-1", first)[1] is None
    assert release(str(tmp_path), "openface", "openface-2", owner("ctl-b", "boot-9", 3333)) is False
    assert release(str(tmp_path), "openface", "openface-1", first) is True
    assert not (tmp_path / "locks" / "openface.lock").exists()


def test_what_makes_a_lock_stale():
    now = time.time()
    held = {"controller": "ctl-a", "boot_id": "boot-1", "pid": 1111, "pid_start": 7, "checked_at": now - 60,
            "since": now - 60}
    assert stale_reason(held, owner(running=["1111:7"]), 3600, now) == ""
    assert "is gone" in stale_reason(held, owner(running=["1111:8"]), 3600, now)  # pid reused by another
    assert "rebooted" in stale_reason(held, owner(boot="boot-2"), 3600, now)
    assert stale_reason(held, owner("ctl-b", running=[]), 3600, now) == ""  # cannot see ctl-a's processes
    assert "more than migration_lock_timeout" in stale_reason(held, owner("ctl-b"), 30, now)
    # A run that looked at its processes before the holder took the lock cannot judge it.
    assert stale_reason(dict(held, checked_at=now), owner(running=[], checked_at=now - 1), 3600, now) == ""
    assert "unreadable" in stale_reason({}, owner(), 3600, now)


def test_names_that_are_not_container_names_make_no_file(tmp_path):
    for name in ("../../x", "/etc/x", "x{{ lookup('pipe', 'id') }}", "a", ".hidden", ""):
        with pytest.raises(LockError):
            take(str(tmp_path), name, "m", owner())
    assert not (tmp_path / "locks").exists()


def _contend(workdir, index, barrier, queue):
    barrier.wait()
    try:
        _record, stale = take(workdir, "svc", "svc-%d" % index, owner("ctl-%d" % index, pid=10000 + index), 60)
        queue.put(("won", index, stale["migration_id"]))
    except LockError as exc:
        queue.put(("held", index, exc.holder.get("migration_id")))


@pytest.mark.parametrize("round_", range(5))
def test_of_twenty_runs_taking_over_a_stale_lock_exactly_one_wins(tmp_path, round_):
    directory = tmp_path / "locks"
    directory.mkdir()
    (directory / "svc.lock").write_text(json.dumps({"migration_id": "svc-old", "controller": "gone",
                                                    "since": time.time() - 3600}))
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(20), context.Queue()
    workers = [context.Process(target=_contend, args=(str(tmp_path), i, barrier, queue)) for i in range(20)]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(winners) == 1 and winners[0][2] == "svc-old"
    # Everyone else was told the winner holds it, and the winner's record is the lock.
    assert {o[2] for o in outcomes if o[0] == "held"} == {"svc-%d" % winners[0][1]}
    assert json.loads((directory / "svc.lock").read_text())["migration_id"] == "svc-%d" % winners[0][1]
    assert sorted(os.listdir(directory)) == ["svc.lock"]


def test_the_module_takes_and_releases_and_names_the_holder(run_module, tmp_path):
    me = owner()
    args = {"service": "openface", "workdir": str(tmp_path), "owner": me, "migration_id": "m1"}
    outcome, result = run_module("edge_lock", args)
    assert outcome == "exit" and result["changed"] and "stale" not in result
    outcome, result = run_module("edge_lock", dict(args, migration_id="m2", owner=owner("ctl-b")))
    assert outcome == "fail" and "migration m1 from ctl-a" in result["msg"] and result["holder"]["migration_id"] == "m1"
    # Our own earlier run, whose process is gone: taken over and reported.
    outcome, result = run_module("edge_lock", dict(args, migration_id="m3", owner=owner(pid=4242, running=[])))
    assert outcome == "exit" and result["stale"]["migration_id"] == "m1"
    assert "is gone" in result["stale"]["stale_because"]
    outcome, result = run_module("edge_lock", dict(args, migration_id="m3", owner=owner(pid=4242, running=[]),
                                                   state="absent"))
    assert outcome == "exit" and result["changed"] is True
    outcome, result = run_module("edge_lock", dict(args, service="../../x"))
    assert outcome == "fail" and "is not a container name" in result["msg"]


def test_the_owner_is_the_nearest_playbook_process_not_a_fleet_parent(tmp_path):
    """A fleet: ansible-playbook (fleet) -> python (edge_fleet_run) -> ansible-playbook (child) ->
    its worker (same command line) -> sh -> python (the module)."""
    proc = tmp_path / "proc"
    tree = {10: (1, b"python3\0/venv/bin/ansible-playbook\0playbooks/fleet.yml\0"),
            11: (10, b"python3\0/venv/bin/ansible-playbook\0playbooks/fleet.yml\0"),
            20: (11, b"python3\0AnsiballZ_edge_fleet_run.py\0"),
            30: (20, b"python3\0/venv/bin/ansible-playbook\0migrate.yml\0-e\0@vars\0"),
            31: (30, b"python3\0/venv/bin/ansible-playbook\0migrate.yml\0-e\0@vars\0"),
            40: (31, b"/bin/sh\0-c\0python3 AnsiballZ_edge_lock_owner.py\0")}
    for pid, (parent, cmdline) in tree.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(cmdline)
        fields = ["S", str(parent)] + ["0"] * 17 + [str(pid * 100)]
        (proc / str(pid) / "stat").write_text("%d (python3) %s\n" % (pid, " ".join(fields)))
    assert edge_lock.playbook_pid(40, str(proc)) == 30
    assert edge_lock.playbook_pid(11, str(proc)) == 10


def test_the_owner_module_names_this_controller():
    identity = controller_identity("ctl-x", pid=os.getpid())
    assert identity["controller"] == "ctl-x" and identity["pid"] == os.getpid() and identity["pid_start"] > 0
    assert isinstance(identity["running"], list) and identity["boot_id"]


def load_action_plugin():
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "action_plugins", "edge_lock_owner.py")
    spec = importlib.util.spec_from_file_location("edge_lock_owner_action", path)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def test_the_owner_is_looked_at_in_the_controllers_own_process_with_the_modules_code():
    from unittest import mock
    plugin = load_action_plugin()
    # The same file the modules get, in a checkout (and in the collection, plugins/module_utils).
    assert os.path.samefile(os.path.join(plugin.MODULE_UTILS, "edge_lock.py"), edge_lock.__file__)

    def run(args):
        task = mock.MagicMock(args=args, async_val=0, check_mode=False, diff=False)
        connection = mock.MagicMock()
        connection._shell.tmpdir = None
        action = plugin.ActionModule(task, connection, mock.MagicMock(), None, None, None)
        return action.run(task_vars={})

    result = run({"controller": "ctl-x"})
    assert result["changed"] is False and result["owner"]["controller"] == "ctl-x"
    assert result["owner"]["pid_start"] > 0 and result["owner"]["boot_id"] == edge_lock.boot_id()
    assert run({})["owner"]["controller"] == controller_identity()["controller"]
    assert run({"controller": 42})["owner"]["controller"] == "42"
    with pytest.raises(Exception, match="other"):
        run({"other": 1})


def test_check_mode_writes_nothing(run_module, tmp_path):
    args = {"service": "openface", "workdir": str(tmp_path), "owner": owner(), "migration_id": "m1",
            "_ansible_check_mode": True}
    outcome, result = run_module("edge_lock", args)
    assert outcome == "exit" and result["changed"] and not (tmp_path / "locks").exists()
