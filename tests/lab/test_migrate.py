"""Live migration in the lab: real dockerd per host, real CRIU, real SSH, real registry.
These tests fail (they do not skip) when the lab is not up: run them with `make test`."""

import json
import os
import subprocess
import time

import pytest
from labtools import (
    REPORTS,
    ROOT,
    VENV_BIN,
    engine,
    latest_report,
    memory_images_left,
    playbook,
    read_file,
    remove_everywhere,
    request,
    running_on,
)

pytestmark = pytest.mark.lab

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


@pytest.mark.parametrize("strategy,hops", [("delta", ["edge2", "edge1"]), ("rsync", ["edge2"]),
                                           ("iterative", ["edge3"])])
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
        if strategy == "iterative":
            rounds = report["warmup_rounds"]
            assert 1 <= len(rounds["rounds"]) <= 4 and rounds["stop_reason"] in ("threshold", "not_shrinking",
                                                                                 "max_rounds"), rounds
            assert report["bytes_warmup"] > report["checkpoint_size"]  # the rounds sent their changes too
        if strategy in ("delta", "iterative"):
            assert "xdelta_source" in report["phases"] and "xdelta_dest" in report["phases"]
            assert report["bytes_freeze"] < 0.05 * report["checkpoint_size"], report
        assert memory_images_left(lab) == []


@pytest.mark.parametrize("precopy_after,chosen,reason", [
    (0, "iterative", "at least 0 s: warm-up rounds until little changes"),
    (100000, "delta", "under 100000 s: no warm-up rounds"),
])
def test_without_a_strategy_the_warm_up_copy_time_decides_on_rounds(lab, openface, precopy_after, chosen, reason):
    """The default strategy takes iterative's rounds when the warm-up copy took at least
    migration_default_precopy_after seconds; the report says which and why."""
    checksum = request(lab["edge1"], 9999, "SUM")["sha256"]
    proc = playbook("migrate.yml", "-e", "service=openface", "-e", "destination=edge2",
                    "-e", "migration_default_precopy_after=%s" % precopy_after)
    report = latest_report("openface")
    assert report["outcome"] == "migrated" and report["strategy"] == chosen, report
    assert report["strategy_reason"].startswith("the warm-up copy took ") and report["strategy_reason"].endswith(reason)
    assert ("strategy %s: the warm-up copy took" % chosen) in proc.stdout  # in the play's summary
    assert ("warmup_rounds" in report) == (chosen == "iterative")
    assert request(lab["edge2"], 9999, "SUM")["sha256"] == checksum


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


def test_openface_migrates_while_clients_keep_asking(lab, openface):
    """Clients connected at the instant of the dump (established and not yet accepted
    connections) must not stop the migration; they reconnect and find the state."""
    import threading
    checksum = request(lab["edge1"], 9999, "SUM")["sha256"]
    stop = threading.Event()
    answers = []

    def client():
        import socket
        held = None
        while not stop.is_set():
            for host in ("edge1", "edge2"):
                try:
                    if held is None:
                        held = socket.create_connection((lab[host]["address"], 9999), timeout=0.5)
                    held.sendall(b"GET\n")
                    data = held.recv(100)
                    if data:
                        answers.append((time.time(), host))
                        break
                    held = None
                except OSError:
                    held = None
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        migrate("openface", "edge2", "delta")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert running_on(lab, "openface") == ["edge2"]
    assert request(lab["edge2"], 9999, "SUM")["sha256"] == checksum
    assert {host for _t, host in answers} == {"edge1", "edge2"}, "clients were served before and after"
    assert memory_images_left(lab) == []


def test_the_edges_answer_names_the_memory_the_service_uses(lab, openface):
    # The engine's stats in one sample (one-shot): the same memory as its usual two-sample answer.
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "edge1", "--one-line", "-m",
                           "edge_container_info", "-a", "name=openface docker_host={{ docker_host }}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    answer = json.loads(proc.stdout.split("=>", 1)[1])
    usage = engine(lab["edge1"]).stats("openface", stream=False)["memory_stats"]["usage"]
    assert answer["running"] and 0.75 * usage <= answer["memory_bytes"] <= 1.25 * usage, (answer["memory_bytes"], usage)
