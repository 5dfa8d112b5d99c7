"""Following the user: a migration prepared ahead of a handover and finished on it (step
prepare / finish / cancel / status), per-user instances of a catalog service, and the
rulebook driven by handover events, on real daemons, CRIU and SSH."""

import glob
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from labtools import (
    ROOT,
    VENV_BIN,
    engine,
    job_files_naming,
    memory_images_left,
    playbook,
    remove_everywhere,
    request,
    running_on,
)

pytestmark = pytest.mark.lab

SERVICE = "openface-32"
PORT = 9997


def instance(user):
    return "openface-%s" % user


def deploy(user, host="edge1"):
    playbook("playbooks/deploy.yml", "-e", "service=%s" % SERVICE, "-e", "user=%s" % user, "-e", "host=%s" % host)


def step(user, name, *extra, check=True):
    return playbook("migrate.yml", "-e", "service=%s" % SERVICE, "-e", "user=%s" % user, "-e", "step=%s" % name,
                    *extra, check=check)


def leftovers(lab, user):
    return [path for host in lab.values() for path in glob.glob(os.path.join(host["checkpoint_dir"],
                                                                              instance(user) + "-*"))]


@pytest.fixture
def user(lab):
    name = "u%d" % (os.getpid() % 10000)
    remove_everywhere(lab, instance(name))
    deploy(name)
    yield name
    remove_everywhere(lab, instance(name))
    for path in leftovers(lab, name):
        subprocess.run(["rm", "-rf", path], check=True)
    pointer = os.path.join(ROOT, "reports", "prepared", instance(name) + ".json")
    if os.path.exists(pointer):
        os.unlink(pointer)


def answers_on(host, deadline):
    """Poll the instance on host until it answers; the time it did and its state (SUM)."""
    while time.time() < deadline:
        try:
            answer = request(host, PORT, "SUM", attempts=1)
        except (OSError, AssertionError, ValueError):
            answer = None
        if answer:
            return time.time(), answer
        time.sleep(0.02)
    raise AssertionError("no answer from %s" % host["name"])


def state(host):
    return request(host, PORT, "SUM")


def test_prepare_then_finish_keeps_the_state_and_the_finish_is_quick(lab, user):
    request(lab["edge1"], PORT, "GET")
    before = state(lab["edge1"])
    prepared = step(user, "prepare", "-e", "destination=edge2")
    assert "PREPARED" in prepared.stdout
    assert running_on(lab, instance(user)) == ["edge1"]  # nothing frozen, nothing moved
    status = step(user, "status")
    assert "prepared edge1 -> edge2" in status.stdout
    started = time.time()
    finish = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % SERVICE,
                               "-e", "user=%s" % user, "-e", "step=finish"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    answered, answer = answers_on(lab["edge2"], started + 120)
    output, _ = finish.communicate(timeout=300)
    assert finish.returncode == 0, output[-3000:]
    assert running_on(lab, instance(user)) == ["edge2"]
    assert answer == before, "the state did not go on from where it was"
    print("finish of a prepared migration of %s: %.2f s from the command to the answer on edge2"
          % (instance(user), answered - started))
    assert "Prepared |" in output  # the pointer's fast path, not the round of every edge
    assert memory_images_left(lab) == [] and leftovers(lab, user) == []
    assert job_files_naming(instance(user) + "-") == []  # the waiter's status file, with its secrets


def test_a_controller_without_the_pointer_finishes_from_the_record_on_the_source(lab, user):
    """Another controller (no pointer) finds the prepared migration in the edges' answers and
    finishes it from the source's record, checked against its inventory and the containers."""
    request(lab["edge1"], PORT, "GET")
    before = state(lab["edge1"])
    step(user, "prepare", "-e", "destination=edge2")
    os.unlink(os.path.join(ROOT, "reports", "prepared", instance(user) + ".json"))
    finish = step(user, "finish")
    assert "Settle |" in finish.stdout
    assert running_on(lab, instance(user)) == ["edge2"]
    assert state(lab["edge2"]) == before
    assert memory_images_left(lab) == [] and leftovers(lab, user) == []


def test_prepare_then_cancel_leaves_the_service_untouched(lab, user):
    before = state(lab["edge1"])
    step(user, "prepare", "-e", "destination=edge2")
    cancel = step(user, "cancel")
    assert "is dropped" in cancel.stdout
    assert running_on(lab, instance(user)) == ["edge1"]
    assert engine(lab["edge2"]).containers(all=True, filters={"name": "^/%s$" % instance(user)}) == []
    assert state(lab["edge1"]) == before
    assert memory_images_left(lab) == [] and leftovers(lab, user) == []
    # The called-off waiter's status file holds the container's configuration.
    assert job_files_naming(instance(user) + "-") == []


def test_an_expired_prepared_migration_is_cleaned_by_the_next_run(lab, user):
    before = state(lab["edge1"])
    step(user, "prepare", "-e", "destination=edge2", "-e", "migration_prepared_ttl=1")
    time.sleep(2)
    run = playbook("migrate.yml", "-e", "service=%s" % SERVICE, "-e", "user=%s" % user, "-e", "destination=edge3")
    assert "Recover |" in run.stdout
    assert running_on(lab, instance(user)) == ["edge3"]
    assert state(lab["edge3"]) == before
    assert memory_images_left(lab) == [] and leftovers(lab, user) == []


def test_a_killed_finish_is_recovered_like_any_interrupted_migration(lab, user):
    before = state(lab["edge1"])
    step(user, "prepare", "-e", "destination=edge2")
    final = os.path.join(lab["edge1"]["checkpoint_dir"], instance(user) + "-*", "final", "pages-*.img")
    proc = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % SERVICE,
                             "-e", "user=%s" % user, "-e", "step=finish"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not glob.glob(final) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert glob.glob(final), "the freeze never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3)
    rerun = playbook("migrate.yml", "-e", "service=%s" % SERVICE, "-e", "user=%s" % user, "-e", "destination=edge2")
    assert "Recover |" in rerun.stdout
    assert running_on(lab, instance(user)) == ["edge2"]
    assert state(lab["edge2"]) == before
    assert memory_images_left(lab) == [] and leftovers(lab, user) == []


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port, event):
    req = urllib.request.Request("http://127.0.0.1:%d/handover" % port, data=json.dumps(event).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        response.read()


def wait_until(check, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s" % what)


def test_the_rulebook_moves_a_users_instance_on_handover_events(lab, user, tmp_path):
    port = free_port()
    (tmp_path / "vars.yml").write_text("webhook_host: 127.0.0.1\nwebhook_port: %d\nmqtt_host: 127.0.0.1\n"
                                       "mqtt_port: 1883\nmqtt_topic: edge-migrate/test-%s\n" % (port, user))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), edge_migrate_project=ROOT,
               PATH=VENV_BIN + ":" + os.environ["PATH"])
    log = open(tmp_path / "rulebook.log", "w")
    rulebook = subprocess.Popen([os.path.join(VENV_BIN, "ansible-rulebook"), "-r", "rulebooks/follow_user.yml",
                                 "-i", "inventory/lab", "-S", "rulebooks/sources",
                                 "--vars", str(tmp_path / "vars.yml"), "-E", "edge_migrate_project"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pointer = os.path.join(ROOT, "reports", "prepared", instance(user) + ".json")
    try:
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 120, "the rulebook's webhook")
        before = state(lab["edge1"])
        event = {"user": user, "service": SERVICE, "from_ap": "ap1", "to_ap": "ap2"}
        post(port, dict(event, kind="predicted"))
        wait_until(lambda: os.path.exists(pointer), 180, "the prepared migration")
        post(port, dict(event, kind="predicted"))  # a duplicate: the migration is prepared again
        post(port, dict(event, kind="handover"))
        post(port, dict(event, kind="handover"))  # a duplicate: the instance is there already
        post(port, dict(event, user="x{{ lookup('pipe', 'touch /tmp/edge-canary') }}", kind="handover"))
        wait_until(lambda: running_on(lab, instance(user)) == ["edge2"] and not os.path.exists(pointer), 300,
                   "the instance on edge2")
        # The duplicates are handled one after the other: four playbook runs in all (the event
        # with a templated user name matches no rule).
        wait_until(lambda: (tmp_path / "rulebook.log").read_text().count("PLAY RECAP") >= 4, 300,
                   "the rulebook's four runs")
        assert running_on(lab, instance(user)) == ["edge2"]
        assert state(lab["edge2"]) == before
        assert not os.path.exists("/tmp/edge-canary")
        assert memory_images_left(lab) == [] and leftovers(lab, user) == []
    finally:
        os.killpg(rulebook.pid, signal.SIGTERM)
        rulebook.wait(timeout=30)
        log.close()
        print((tmp_path / "rulebook.log").read_text()[-3000:])
