"""The edge_docker role's file changes, run for real on local files: daemon.json merged by
content (other settings kept, formatting alone is no change) with dockerd reloaded only when
it changed, and the shared root mount kept in rc.local. A stand-in `dockerd` process (a copy
of sleep) shows whether the reload signal was sent."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from module_runner import ROOT

PLAYBOOK = ROOT + "/.venv/bin/ansible-playbook"
RUNTIME = {"edge-migrate": {"path": "/usr/local/libexec/edge-migrate-runtime"}}


def stand_in_dockerd(tmp_path, name):
    binary = tmp_path / "dockerd"
    if not binary.exists():
        shutil.copy(shutil.which("sleep"), binary)
    proc = subprocess.Popen([str(binary), "300"])
    pidfile = tmp_path / ("%s.pid" % name)
    pidfile.write_text("%d\n" % proc.pid)
    return proc, pidfile


def daemon_json(tmp_path, name):
    # the fresh engine has no configuration directory yet
    return tmp_path / ("etc-docker/daemon.json" if name == "fresh" else "%s.json" % name)


def play(name, tmp_path, pidfile, tasks_from, **extra):
    return {"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
            "vars": dict(edge_docker_daemon_json=str(daemon_json(tmp_path, name)),
                         edge_docker_pidfile=str(pidfile), **extra),
            "tasks": [{"name": "Run " + tasks_from, "ansible.builtin.include_role": {
                "name": "edge_docker", "tasks_from": tasks_from}}]}


def run_playbook(path):
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-e", "ansible_python_interpreter=" + sys.executable,
                           str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return int(re.search(r"^localhost\s*:.*changed=(\d+)", proc.stdout, re.M).group(1))


def reloaded(proc):
    try:
        return proc.wait(timeout=5) == -signal.SIGHUP
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def roles_run(tmp_path_factory):
    """One playbook over every case, run twice: {changed: [first, second], files, processes}."""
    tmp = tmp_path_factory.mktemp("edge_roles")
    engines = {name: stand_in_dockerd(tmp, name) for name in ("fresh", "other", "same")}
    (tmp / "other.json").write_text('{"log-driver": "local", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}')
    # the same settings as the role's, another layout and key order: not a change
    same_text = json.dumps({"runtimes": RUNTIME, "deprecated-key-path": "/k.json"}, indent=1)
    (tmp / "same.json").write_text(same_text)
    (tmp / "existing.rc.local").write_text("#!/bin/sh -e\necho booted\nexit 0\n")
    os.chmod(tmp / "existing.rc.local", 0o755)
    plays = [play(name, tmp, pidfile, "daemon_json.yml", edge_docker_merge={"runtimes": RUNTIME})
             for name, (_proc, pidfile) in engines.items()]
    rshared = "shared" in subprocess.run(["findmnt", "-n", "-o", "PROPAGATION", "/"], capture_output=True,
                                         text=True).stdout
    if rshared:  # else the role would run mount --make-rshared /, which needs root
        plays += [play(name, tmp, tmp / "none.pid", "rshared.yml", edge_docker_rshared_persistence="rc.local",
                       edge_docker_rc_local=str(tmp / ("%s.rc.local" % name))) for name in ("fresh", "existing")]
    book = tmp / "play.yml"
    book.write_text(yaml.safe_dump(plays))
    try:
        first = run_playbook(book)
        signalled = {name: reloaded(proc) for name, (proc, _pidfile) in engines.items()}
        second = run_playbook(book)
        yield {"changed": [first, second], "tmp": tmp, "same_text": same_text, "signalled": signalled,
               "rshared": rshared, "engines": engines}
    finally:
        for proc, _pidfile in engines.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_daemon_json_merged_by_content_and_reloaded_only_on_change(roles_run):
    tmp = roles_run["tmp"]
    assert json.loads(daemon_json(tmp, "fresh").read_text()) == {"runtimes": RUNTIME}
    assert json.loads((tmp / "other.json").read_text()) == {
        "log-driver": "local", "runtimes": dict(RUNTIME, crun={"path": "/usr/bin/crun"})}
    assert (tmp / "same.json").read_text() == roles_run["same_text"]
    assert roles_run["signalled"] == {"fresh": True, "other": True, "same": False}
    # a directory made, two files written, two engines reloaded (and three rc.local changes when
    # / is shared)
    assert roles_run["changed"][0] == 5 + (3 if roles_run["rshared"] else 0)
    # the second run changes nothing and signals nobody
    assert roles_run["changed"][1] == 0
    assert roles_run["engines"]["same"][0].poll() is None


def test_shared_root_mount_kept_in_rc_local(roles_run):
    if not roles_run["rshared"]:
        pytest.skip("/ is not shared here: the role would run mount --make-rshared /, which needs root")
    fresh, existing = roles_run["tmp"] / "fresh.rc.local", roles_run["tmp"] / "existing.rc.local"
    assert fresh.read_text().startswith("#!/bin/sh\n")
    assert os.stat(fresh).st_mode & 0o777 == 0o755
    lines = existing.read_text().splitlines()
    assert lines[0] == "#!/bin/sh -e" and lines[-1] == "exit 0"
    for path in (fresh, existing):
        assert "\nmount --make-rshared /\n" in path.read_text()
    assert existing.read_text().index("mount --make-rshared") < existing.read_text().index("exit 0")
