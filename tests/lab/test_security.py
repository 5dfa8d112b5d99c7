"""A compromised edge takes over nothing else, on real daemons, CRIU and SSH: a container whose
configuration would give it power over the destination is refused before the freeze; its
secrets reach no log; a fleet run fed a templated container name runs nothing on the
controller; two controllers migrating the same service at once are kept apart by the lock on
the edge."""

import os
import secrets
import shutil
import subprocess
import time

import docker
import pytest
from labtools import ROOT, VENV_BIN, engine, latest_report, memory_images_left, playbook, remove_everywhere, running_on

pytestmark = pytest.mark.lab

SIMPLE = "10.77.0.1:5000/simple:latest"
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"


def start(lab, name, env=None, **host_config):
    remove_everywhere(lab, name)
    api = engine(lab["edge1"])
    api.pull(SIMPLE)
    api.start(api.create_container(SIMPLE, name=name, entrypoint=["sh", "-c"], command=[COUNTER], environment=env,
                                   host_config=api.create_host_config(**host_config)))
    return api


def migrate(name, *extra, check=False):
    return playbook("migrate.yml", "-e", "service=%s" % name, "-e", "destination=edge2", *extra, check=check)


def lying_checkout(path, host_config):
    """A checkout of the project whose edge_container_info is the real one, except that the container's
    configuration it reports has `host_config` in its HostConfig: what a compromised source could claim.
    (A playbook's own library/ comes before ANSIBLE_LIBRARY, hence a checkout.)"""
    other_checkout(path)
    module = os.path.join(str(path), "library", "edge_container_info.py")
    with open(module) as handle:
        real = handle.read()
    tail = 'if __name__ == "__main__":\n    main()'
    assert real.rstrip().endswith(tail)
    with open(module, "w") as handle:
        handle.write(real.rstrip()[:-len(tail)] + (
            "\n\n_exit = AnsibleModule.exit_json\n\n\n"
            "def _lie(self, **result):\n"
            "    if result.get('config'):\n"
            "        result['config'].setdefault('HostConfig', {}).update(%r)\n"
            "    _exit(self, **result)\n\n\n"
            "AnsibleModule.exit_json = _lie\n"
            "main()\n") % (host_config,))
    return str(path)


@pytest.mark.parametrize("lie, refusal", [
    ({"Privileged": True}, "the container is privileged (--privileged): allow it on edge2 with "
                           "migration_allow_privileged: true"),
    ({"Binds": ["/:/host"]}, "has bind mounts (/ -> /host)"),
])
def test_a_source_that_reports_a_privileged_container_is_refused_before_the_freeze(lab, tmp_path, lie, refusal):
    """This lab's root cannot start a --privileged container (no CAP_SYS_RESOURCE): the source claims one,
    or a bind mount of the destination's root that its storage report does not show."""
    name = "policy-lied"
    api = start(lab, name)
    try:
        before = api.inspect_container(name)["State"]
        checkout = lying_checkout(tmp_path / "lying", lie)
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % name,
                               "-e", "destination=edge2"], cwd=checkout, capture_output=True, text=True, timeout=600)
        assert proc.returncode != 0
        said = " ".join(proc.stdout.split())
        assert refusal in said, said[-3000:]
        assert "Nothing was frozen" in said
        after = api.inspect_container(name)["State"]
        assert after["Running"] and after["Pid"] == before["Pid"] and after["StartedAt"] == before["StartedAt"]
        assert running_on(lab, name) == ["edge1"]
        with pytest.raises(docker.errors.NotFound):
            engine(lab["edge2"]).inspect_container(name)
    finally:
        remove_everywhere(lab, name)


@pytest.mark.parametrize("host_config, setting", [
    ({"cap_add": ["SYS_ADMIN"]}, "migration_allow_capabilities: [SYS_ADMIN]"),
    ({"pid_mode": "host"}, "migration_allow_host_namespaces: [pid]"),
    ({"ipc_mode": "host"}, "migration_allow_host_namespaces: [ipc]"),
    ({"security_opt": ["seccomp=unconfined"]}, "migration_allow_unconfined: true"),
])
def test_a_container_that_would_gain_power_over_the_destination_is_refused_before_the_freeze(lab, host_config,
                                                                                             setting):
    name = "policy-refused"
    api = start(lab, name, **host_config)
    try:
        before = api.inspect_container(name)["State"]
        proc = migrate(name)
        assert proc.returncode != 0
        assert setting in proc.stdout and "Plan | the destination's policy allows" in proc.stdout
        assert "Nothing was frozen" in proc.stdout
        after = api.inspect_container(name)["State"]
        assert after["Running"] and after["Pid"] == before["Pid"] and after["StartedAt"] == before["StartedAt"]
        assert running_on(lab, name) == ["edge1"]
        with pytest.raises(docker.errors.NotFound):
            engine(lab["edge2"]).inspect_container(name)
    finally:
        remove_everywhere(lab, name)


def test_what_the_destination_allows_moves(lab):
    name = "policy-allowed"
    start(lab, name, cap_add=["NET_ADMIN"])
    try:
        migrate(name, "-e", '{"migration_allow_capabilities": ["NET_ADMIN"]}', check=True)
        assert running_on(lab, name) == ["edge2"]
        assert engine(lab["edge2"]).inspect_container(name)["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    finally:
        remove_everywhere(lab, name)


def files_holding(value, *roots):
    found = []
    for root in roots:
        if os.path.exists(root):
            proc = subprocess.run(["grep", "-rlaF", "--", value, root], capture_output=True, text=True, timeout=300)
            found += proc.stdout.split()
    return found


def test_a_secret_in_the_env_reaches_the_destination_and_no_log(lab):
    name = "secret-env"
    password = "pw-" + secrets.token_hex(16)
    start(lab, name, env={"DB_PASSWORD": password})
    try:
        proc = migrate(name, "-vvv", check=True)
        env = engine(lab["edge2"]).inspect_container(name)["Config"]["Env"]
        assert "DB_PASSWORD=%s" % password in env
        assert password not in proc.stdout and password not in proc.stderr
        assert latest_report(name)["outcome"] == "migrated"
        # The lab's hosts share the controller's file system: one search covers every host.
        assert files_holding(password, os.path.join(ROOT, "reports"), "/var/log", "/root/.ansible_async") == []
        assert memory_images_left(lab) == [] or all("/%s-" % name not in p for p in memory_images_left(lab))
    finally:
        remove_everywhere(lab, name)


FAKE_FACTS = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

HOSTILE = "x{{ lookup('pipe', 'touch %(canary)s') }}"


def main():
    module = AnsibleModule(argument_spec=dict(memory_bytes=dict(type="int"), cpus=dict(type="float"),
                                              sample_seconds=dict(type="float"), docker_host=dict(type="str"),
                                              docker_timeout=dict(type="int")))
    containers = [{"name": HOSTILE, "id": "f" * 64, "image": "x", "memory_bytes": 1000000, "cpu_cores": 0.0,
                   "measured": True}]
    module.exit_json(changed=False, containers=containers, names=[HOSTILE], memory_bytes=8 * 10 ** 9,
                     memory_available_bytes=8 * 10 ** 9, containers_memory_bytes=1000000,
                     free_memory_bytes=4 * 10 ** 9, cpus=2.0, cpu_cores_used=0.0, load=0.0, loadavg=[0, 0, 0])


main()
'''


@pytest.mark.parametrize("mode", ["evacuate", "plan"])
def test_an_edge_reporting_a_templated_container_name_runs_nothing_on_the_controller(lab, tmp_path, mode):
    """Every edge answers edge_fleet_facts with a container named x{{ lookup('pipe', ...) }}."""
    canary = tmp_path / "canary"
    library = tmp_path / "library"
    library.mkdir()
    (library / "edge_fleet_facts.py").write_text(FAKE_FACTS % {"canary": canary})
    if mode == "evacuate":
        extra = ["-e", "evacuate=edge1"]
    else:
        plan = tmp_path / "plan.yml"
        plan.write_text("- service: \"x{{ lookup('pipe', 'touch %s') }}\"\n  destination: edge2\n" % canary)
        extra = ["-e", "plan=%s" % plan]
    env = dict(os.environ, ANSIBLE_LIBRARY="%s:%s" % (library, os.path.join(ROOT, "library")))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/fleet.yml", *extra], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    if mode == "evacuate":
        assert "edge1 reported container names that are not Docker names" in proc.stdout
    else:
        assert "service must be a container name" in proc.stdout
    assert not canary.exists()


def other_checkout(path):
    """A second checkout of this project in the state of this one (a clone, with the working
    tree's changes on top) and its own copy of the lab's inventory."""
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", ROOT, str(path)], check=True)
    changed = subprocess.run(["git", "ls-files", "-z", "-m", "-o", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, changed):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(path, name)) or str(path), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(path, name))
    for name in filter(None, subprocess.run(["git", "ls-files", "-z", "-d"], cwd=ROOT, capture_output=True,
                                            text=True, check=True).stdout.split("\0")):
        if os.path.exists(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
    shutil.copy2(os.path.join(ROOT, "inventory", "lab", "hosts.yml"), os.path.join(path, "inventory", "lab"))


def test_two_controllers_migrating_the_same_service_at_once_one_runs_the_other_is_told_who(lab, tmp_path):
    name = "lock-race"
    start(lab, name)
    other = tmp_path / "other-checkout"
    other_checkout(other)
    try:
        started = time.monotonic()
        logs = [open(tmp_path / ("%d.log" % i), "w") for i in range(2)]
        runs = [subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % name,
                                  "-e", "destination=edge2"], cwd=cwd, stdout=logs[i], stderr=subprocess.STDOUT)
                for i, cwd in enumerate((ROOT, str(other)))]
        ended = {}
        while len(ended) < len(runs) and time.monotonic() - started < 600:
            for i, run in enumerate(runs):
                if i not in ended and run.poll() is not None:
                    ended[i] = time.monotonic() - started
            time.sleep(0.2)
        for log in logs:
            log.close()
        results = [(run.returncode, ended.get(i), (tmp_path / ("%d.log" % i)).read_text())
                   for i, run in enumerate(runs)]
        assert sorted(rc == 0 for rc, _s, _o in results) == [False, True], [o[-3000:] for _r, _s, o in results]
        loser = next(r for r in results if r[0] != 0)
        said = " ".join(loser[2].split())
        assert "%s is already being migrated: migration %s-" % (name, name) in said, loser[2][-3000:]
        assert "ansible-playbook pid" in said and "Lock | take the lock on edge1" in said
        assert loser[1] < 60  # fails fast, while the other run migrates
        assert running_on(lab, name) == ["edge2"]
        # The loser's release left the winner's lock alone and the winner released its own.
        for host in ("edge1", "edge2"):
            assert not os.path.exists(os.path.join(lab[host]["checkpoint_dir"], "locks", name + ".lock"))
    finally:
        remove_everywhere(lab, name)
        shutil.rmtree(other, ignore_errors=True)
