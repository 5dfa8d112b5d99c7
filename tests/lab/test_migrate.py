"""Live migration in the lab: real dockerd per host, real CRIU, real SSH, real registry.
These tests fail (they do not skip) when the lab is not up: run them with `make test`."""

import json
import os
import socket
import subprocess
import time

import docker
import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
REPORTS = os.path.join(ROOT, "reports")


@pytest.fixture(scope="module")
def lab():
    status = subprocess.run([os.path.join(ROOT, "lab", "lab"), "status", "--json"], capture_output=True, text=True)
    assert status.returncode == 0, "the lab is not up (make lab): %s %s" % (status.stdout, status.stderr)
    hosts = {host["name"]: host for host in json.loads(status.stdout)["hosts"]}
    assert len(hosts) >= 2
    return hosts


def playbook(*args, check=True):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, "ansible-playbook %s failed:\n%s\n%s" % (" ".join(args), proc.stdout[-6000:],
                                                                             proc.stderr[-3000:])
    return proc


def engine(host):
    return docker.APIClient(base_url=host["docker_host"], version="auto")


def running_on(lab, name):
    found = []
    for host_name, host in lab.items():
        try:
            if engine(host).inspect_container(name)["State"]["Running"]:
                found.append(host_name)
        except docker.errors.NotFound:
            pass
    return found


def remove_everywhere(lab, name):
    for host in lab.values():
        try:
            engine(host).remove_container(name, force=True)
        except docker.errors.NotFound:
            pass


def request(host, port, line, attempts=50):
    """One request to a service by the host's lab address; retried while it comes up."""
    for _attempt in range(attempts):
        try:
            with socket.create_connection((host["address"], port), timeout=5) as conn:
                conn.sendall(line.encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    return json.loads(data)
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("%s:%s did not answer %s" % (host["address"], port, line))


def read_file(api, container, path):
    return int(api.exec_start(api.exec_create(container, ["cat", path])).decode())


def memory_images_left(lab):
    """Files under each host's checkpoint directory and checkpoints left in Docker's data root."""
    left = []
    for host in lab.values():
        for root, _dirs, files in os.walk(host["checkpoint_dir"]):
            left += [os.path.join(root, f) for f in files]
        containers = os.path.join(os.path.dirname(host["checkpoint_dir"]), "docker", "containers")
        for container in os.listdir(containers) if os.path.isdir(containers) else []:
            checkpoints = os.path.join(containers, container, "checkpoints")
            if os.path.isdir(checkpoints) and os.listdir(checkpoints):
                left.append(checkpoints)
    return left


def latest_report(service):
    names = sorted(n for n in os.listdir(REPORTS) if n.endswith("-%s.json" % service))
    with open(os.path.join(REPORTS, names[-1])) as handle:
        return json.load(handle)


def migrate(service, destination, strategy):
    before = set(os.listdir(REPORTS)) if os.path.isdir(REPORTS) else set()
    proc = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=%s" % destination,
                    "-e", "strategy=%s" % strategy)
    assert "%s: " % service in proc.stdout and "MIGRATED" in proc.stdout  # the summary is printed
    assert len(set(os.listdir(REPORTS)) - before) >= 1
    report = latest_report(service)
    assert report["outcome"] == "migrated" and report["destination"] == destination
    return report


@pytest.fixture
def openface(lab):
    remove_everywhere(lab, "openface")
    playbook("playbooks/deploy.yml", "-e", "service=openface", "-e", "host=edge1")
    yield "openface"
    remove_everywhere(lab, "openface")


@pytest.mark.parametrize("strategy,hops", [("delta", ["edge2", "edge1", "edge2"]), ("rsync", ["edge2", "edge1"])])
def test_openface_keeps_its_state_over_several_hops(lab, openface, strategy, hops):
    first = request(lab["edge1"], 9999, "GET")["count"]
    checksum = request(lab["edge1"], 9999, "SUM")["sha256"]
    count = request(lab["edge1"], 9999, "GET")["count"]
    assert count == first + 1
    for destination in hops:
        report = migrate("openface", destination, strategy)
        assert running_on(lab, "openface") == [destination]
        answer = request(lab[destination], 9999, "SUM")
        assert answer["sha256"] == checksum, "state changed on the way to %s" % destination
        assert answer["count"] == count, "counter did not go on on %s" % destination
        count = request(lab[destination], 9999, "GET")["count"]
        assert report["state_preserved"] is True and report["strategy"] == strategy
        for phase in ("pre_checkpoint", "pre_rsync", "prepare", "checkpoint", "final_rsync", "restore", "migrate"):
            assert phase in report["phases"], phase
        assert report["downtime_s"] > 0 and report["bytes_warmup"] > 100e6
        if strategy == "delta":
            assert "xdelta_source" in report["phases"] and "xdelta_dest" in report["phases"]
            assert report["bytes_freeze"] < 0.05 * report["checkpoint_size"], report
        assert memory_images_left(lab) == []


def test_cold_migration_starts_from_zero_and_says_so(lab, openface):
    checksum = request(lab["edge1"], 9999, "SUM")["sha256"]
    request(lab["edge1"], 9999, "GET")
    report = migrate("openface", "edge2", "cold")
    assert running_on(lab, "openface") == ["edge2"]
    answer = request(lab["edge2"], 9999, "GET")
    assert answer["count"] == 1
    assert request(lab["edge2"], 9999, "SUM")["sha256"] != checksum
    assert report["state_preserved"] is False and "lost" in report["note"]
    assert memory_images_left(lab) == []


def test_container_started_by_hand_migrates_with_its_configuration(lab):
    remove_everywhere(lab, "handmade")
    source = engine(lab["edge1"])
    image = "10.77.0.1:5000/simple:latest"
    source.pull(image)
    container = source.create_container(
        image, name="handmade",
        command=["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"],
        environment={"GREETING": "hello edge"}, labels={"team": "mobility"}, ports=[9999],
        host_config=source.create_host_config(port_bindings={9999: 8099}, restart_policy={"Name": "on-failure"}))
    source.start(container)
    try:
        time.sleep(1)
        before = read_file(source, "handmade", "/tmp/n")
        assert before > 3
        migrate("handmade", "edge2", "delta")
        assert running_on(lab, "handmade") == ["edge2"]
        moved = engine(lab["edge2"]).inspect_container("handmade")
        assert "GREETING=hello edge" in moved["Config"]["Env"]
        assert moved["Config"]["Labels"]["team"] == "mobility"
        assert moved["Config"]["Cmd"][:2] == ["sh", "-c"]
        assert moved["HostConfig"]["PortBindings"]["9999/tcp"][0]["HostPort"] == "8099"
        assert moved["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
        after = read_file(engine(lab["edge2"]), "handmade", "/tmp/n")
        assert after >= before, "the counter restarted from zero"
        assert memory_images_left(lab) == []
    finally:
        remove_everywhere(lab, "handmade")
