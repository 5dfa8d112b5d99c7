"""The cgroup freeze before a final dump: which control file, the wait for the kernel's word,
and the thaw after a failed dump (cgroup files stand in as plain files; the lab's migrations
freeze real ones)."""

import json
import os

import pytest
from ansible.module_utils import edge_runc
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_freezer import cgroup_paths, freeze


def v1_cgroup(tmp_path):
    freezer = tmp_path / "freezer" / "svc"
    freezer.mkdir(parents=True)
    (freezer / "freezer.state").write_text("THAWED\n")
    return {"freezer": str(freezer), "memory": str(tmp_path / "memory" / "svc")}


def v2_cgroup(tmp_path, frozen_event):
    unified = tmp_path / "unified" / "svc"
    unified.mkdir(parents=True)
    (unified / "cgroup.freeze").write_text("0\n")
    (unified / "cgroup.events").write_text("populated 1\nfrozen %d\n" % frozen_event)
    return {"": str(unified)}


def test_v1_freezer_state_is_set_and_read_back(tmp_path):
    paths = v1_cgroup(tmp_path)
    frozen = freeze(paths)
    state = os.path.join(paths["freezer"], "freezer.state")
    assert frozen is not None and open(state).read() == "FROZEN"
    frozen.thaw()
    assert open(state).read() == "THAWED"


def test_v2_waits_for_the_frozen_event(tmp_path):
    paths = v2_cgroup(tmp_path, frozen_event=1)
    frozen = freeze(paths)
    assert frozen is not None and open(os.path.join(paths[""], "cgroup.freeze")).read() == "1"
    frozen.thaw()
    assert open(os.path.join(paths[""], "cgroup.freeze")).read() == "0"


def test_a_cgroup_that_does_not_freeze_in_time_is_thawed_and_left_to_criu(tmp_path):
    paths = v2_cgroup(tmp_path, frozen_event=0)
    assert freeze(paths, timeout=0.05) is None
    assert open(os.path.join(paths[""], "cgroup.freeze")).read() == "0"


def test_v1_is_preferred_on_a_hybrid_host_and_no_freezer_means_none(tmp_path):
    paths = v1_cgroup(tmp_path)
    paths[""] = str(tmp_path / "unified-without-freeze")
    assert freeze(paths).control.endswith("freezer.state")
    assert freeze({"": str(tmp_path / "nothing")}) is None


def test_a_paused_container_is_left_to_criu_and_never_thawed(tmp_path):
    paths = v1_cgroup(tmp_path)
    state = os.path.join(paths["freezer"], "freezer.state")
    open(state, "w").write("FROZEN\n")
    assert freeze(paths) is None and open(state).read() == "FROZEN\n"
    paths = v2_cgroup(tmp_path / "v2", frozen_event=1)
    open(os.path.join(paths[""], "cgroup.freeze"), "w").write("1\n")
    assert freeze(paths) is None


def test_thaw_of_a_removed_cgroup_is_quiet(tmp_path):
    paths = v1_cgroup(tmp_path)
    frozen = freeze(paths)
    os.unlink(os.path.join(paths["freezer"], "freezer.state"))
    os.rmdir(paths["freezer"])
    frozen.thaw()


def runc_state(tmp_path, paths):
    root = tmp_path / "runtime-runc" / "moby"
    (root / "cid").mkdir(parents=True)
    (root / "cid" / "state.json").write_text(json.dumps({"cgroup_paths": paths}))
    return tmp_path


class Runc:
    """Records the freezer's state when runc is called and answers with rc."""

    def __init__(self, state_file, rc):
        self.state_file, self.rc, self.seen = state_file, rc, []

    def __call__(self, argv, env=None):
        self.seen.append((argv, open(self.state_file).read()))
        self.env = env
        return self.rc, "", "criu failed: type NOTIFY errno 0\n" if self.rc else ""


def test_a_final_dump_starts_frozen_and_a_failed_one_is_thawed(tmp_path):
    paths = v1_cgroup(tmp_path)
    exec_root = runc_state(tmp_path, paths)
    state = os.path.join(paths["freezer"], "freezer.state")
    runc = Runc(state, rc=0)
    stats = edge_runc.checkpoint(runc, str(exec_root), {"Id": "cid"}, str(tmp_path / "final"), leave_running=False)
    assert runc.seen[0][1] == "FROZEN" and "prefrozen_s" in stats
    failing = Runc(state, rc=1)
    open(state, "w").write("THAWED")
    with pytest.raises(EdgeError):
        edge_runc.checkpoint(failing, str(exec_root), {"Id": "cid"}, str(tmp_path / "again"), leave_running=False)
    assert failing.seen[0][1] == "FROZEN" and open(state).read() == "THAWED"


def test_a_dump_that_leaves_the_service_running_is_not_frozen_first(tmp_path):
    paths = v1_cgroup(tmp_path)
    exec_root = runc_state(tmp_path, paths)
    runc = Runc(os.path.join(paths["freezer"], "freezer.state"), rc=0)
    stats = edge_runc.checkpoint(runc, str(exec_root), {"Id": "cid"}, str(tmp_path / "warm"), leave_running=True)
    assert runc.seen[0][1].strip() == "THAWED" and "prefrozen_s" not in stats
    # CRIU's work directory is a private one outside the migration's directory (other edges
    # write there), gone with the dump; CRIU finds the dump's own tar there first.
    argv = runc.seen[0][0]
    work = argv[argv.index("--work-path") + 1]
    assert not work.startswith(str(tmp_path)) and not os.path.exists(work)
    assert runc.env["PATH"].split(os.pathsep)[0] == os.path.join(work, "bin")
    assert not os.path.exists(str(tmp_path / "warm.work"))


def test_cgroup_paths_keeps_string_entries_only(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"cgroup_paths": {"freezer": "/f", "x": 3}}))
    assert cgroup_paths(str(tmp_path)) == {"freezer": "/f"}


def test_a_dump_with_a_ghost_limit_names_its_configuration_to_criu_and_reports_it(tmp_path):
    paths = v1_cgroup(tmp_path)
    exec_root = runc_state(tmp_path, paths)
    seen = []

    def runc(argv, env=None):
        conf = env.get("CRIU_CONFIG_FILE")
        seen.append((conf, open(conf).read() if conf else None, oct(os.stat(conf).st_mode & 0o777) if conf else None))
        return 0, "", ""

    stats = edge_runc.checkpoint(runc, str(exec_root), {"Id": "cid"}, str(tmp_path / "warm"), leave_running=True,
                                 ghost_limit=80 << 20)
    assert seen[0][1:] == ("ghost-limit %d\n" % (80 << 20), "0o600") and stats["ghost_limit"] == 80 << 20
    assert not seen[0][0].startswith(str(tmp_path)) and not os.path.exists(seen[0][0])
    # Without one, CRIU reads runc's configuration alone.
    runc_plain = Runc(os.path.join(paths["freezer"], "freezer.state"), rc=0)
    stats = edge_runc.checkpoint(runc_plain, str(exec_root), {"Id": "cid"}, str(tmp_path / "warm2"), leave_running=True)
    assert "ghost_limit" not in stats and "CRIU_CONFIG_FILE" not in runc_plain.env
