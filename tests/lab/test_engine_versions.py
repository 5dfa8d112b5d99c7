"""Migrations between Docker Engine versions. The lab's system edges (lab/labsystems.py) are
separate Debian systems, each with its own root file system and mount namespace, made
migration-ready only by playbooks/prepare_edges.yml over SSH (its second run changes nothing:
tests/lab/test_prepare_edges.py): trixie runs Debian's Docker 26.1, sid Docker 28.5; edge1..3
run this machine's Docker 20.10 (bookworm)."""

import time

import docker
import pytest
from labtools import engine, lab_status, playbook, read_file, request, running_on

pytestmark = pytest.mark.lab

INVENTORIES = ["-i", "inventory/lab", "-i", "inventory/lab-systems"]
ENGINES = {"bookworm": "20.10.", "trixie": "26.1.", "sid": "28.5."}
DEBIAN_VERSIONS = {"bookworm": "12.", "trixie": "13.", "sid": "/sid"}
REGISTRY = "10.77.0.1:5000"
MEMORY_COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"]
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; echo $i > /data/n; sleep 0.1; done"]


@pytest.fixture(scope="module")
def edges():
    """Every edge by name: edge1..N and the system edges, with a docker_host the controller reaches."""
    status = lab_status(require_up=True)
    systems = {s["name"]: s for s in status["systems"]}
    assert {s["release"] for s in systems.values()} >= {"trixie", "sid"}, \
        "the lab has no trixie and sid system edges: make lab (LAB_RELEASES=trixie,sid)"
    return dict({h["name"]: h for h in status["hosts"]}, **systems)


def system(edges, release):
    return next(name for name, e in edges.items() if e.get("release") == release)


def migrate(name, destination, *extra):
    proc = playbook(*INVENTORIES, "migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % destination,
                    *extra)
    assert "MIGRATED" in proc.stdout, proc.stdout[-3000:]
    return proc


def remove(edges, name, volume=None, network=None):
    """The container (and its volume or network) gone from every edge."""
    for e in edges.values():
        api = engine(e)
        for call, arg in ((api.remove_container, name), (api.remove_volume, volume), (api.remove_network, network)):
            try:
                if arg:
                    call(arg, **({"force": True} if call != api.remove_network else {}))
            except docker.errors.NotFound:
                pass


def test_system_edges_run_their_release_and_its_engine(edges):
    for name, e in edges.items():
        if "release" not in e:
            continue
        assert e["engine"] and e["engine"].startswith(ENGINES[e["release"]]), (name, e)
        assert e["containerd"] and e["runc"] and e["criu"], (name, e)
        assert e["sshd"] and e["dockerd"], (name, e)
        info = engine(e).info()
        assert "edge-migrate" in info["Runtimes"] and info["ExperimentalBuild"], (name, info["Runtimes"])
        # its own root file system: that release's Debian, not this machine's
        assert DEBIAN_VERSIONS[e["release"]] in e["debian_version"], (name, e["debian_version"])


def test_openface_moves_between_docker_20_and_26(edges):
    """bookworm (20.10) -> trixie (26.1) -> bookworm, state kept at each hop."""
    remove(edges, "openface")
    playbook(*INVENTORIES, "playbooks/deploy.yml", "-e", "service=openface", "-e", "host=edge1")
    try:
        checksum = request(edges["edge1"], 9999, "SUM")["sha256"]
        count = request(edges["edge1"], 9999, "GET")["count"]
        for destination in (system(edges, "trixie"), "edge1"):
            migrate("openface", destination)
            assert running_on(edges, "openface") == [destination]
            answer = request(edges[destination], 9999, "SUM")
            assert answer["sha256"] == checksum, "state changed on the way to %s" % destination
            assert answer["count"] == count, "the counter did not go on on %s" % destination
            count = request(edges[destination], 9999, "GET")["count"]
    finally:
        remove(edges, "openface")


def test_docker_28_destination_is_refused_before_anything_is_frozen(edges):
    """Docker 28 (containerd 2) cannot restore a container with its own network namespace
    (moby#50750): the migration says so before the warm-up, and the service never stops."""
    sid = system(edges, "sid")
    remove(edges, "openface")
    playbook(*INVENTORIES, "playbooks/deploy.yml", "-e", "service=openface", "-e", "host=edge1")
    try:
        count = request(edges["edge1"], 9999, "GET")["count"]
        proc = playbook(*INVENTORIES, "migrate.yml", "-e", "service=openface", "-e", "destination=%s" % sid,
                        check=False)
        assert proc.returncode != 0
        assert "%s runs Docker %s" % (sid, edges[sid]["engine"]) in proc.stdout, proc.stdout[-3000:]
        assert "moby#50750" in proc.stdout
        assert "TASK [migration : Warm-up" not in proc.stdout  # refused before the warm-up checkpoint
        assert running_on(edges, "openface") == ["edge1"]
        assert request(edges["edge1"], 9999, "GET")["count"] == count + 1, "the service was interrupted"
        assert engine(edges[sid]).containers(all=True, filters={"name": "openface"}) == []
    finally:
        remove(edges, "openface")


def test_layer_and_volume_move_from_docker_20_to_26(edges):
    name, volume = "versions-layer", "versions-data"
    dst_name = system(edges, "trixie")
    src, dst = engine(edges["edge2"]), engine(edges[dst_name])
    remove(edges, name, volume)
    try:
        src.pull(REGISTRY + "/simple", tag="latest")
        src.create_volume(volume)
        container = src.create_container(REGISTRY + "/simple:latest", name=name, command=COUNTER,
                                         host_config=src.create_host_config(binds=["%s:/data" % volume]))
        src.start(container)
        time.sleep(1)
        src.exec_start(src.exec_create(name, ["sh", "-c", "echo made-on-20 > /layer-file"]))
        before = read_file(src, name, "/tmp/n")
        migrate(name, dst_name, "-e", "migrate_volumes=true")
        assert running_on(edges, name) == [dst_name]
        assert read_file(dst, name, "/tmp/n") > before
        assert dst.exec_start(dst.exec_create(name, ["cat", "/layer-file"])).decode().strip() == "made-on-20"
        assert read_file(dst, name, "/data/n") > before
    finally:
        remove(edges, name, volume)


def test_user_network_moves_from_docker_20_to_26(edges):
    name, network = "versions-netted", "versions-net"
    dst_name = system(edges, "trixie")
    src, dst = engine(edges["edge1"]), engine(edges[dst_name])
    remove(edges, name, network=network)
    try:
        src.pull(REGISTRY + "/simple", tag="latest")
        src.create_network(network, driver="bridge")
        container = src.create_container(
            REGISTRY + "/simple:latest", name=name, command=MEMORY_COUNTER,
            host_config=src.create_host_config(network_mode=network),
            networking_config=src.create_networking_config({network: src.create_endpoint_config(aliases=["kv"])}))
        src.start(container)
        time.sleep(1)
        before = read_file(src, name, "/tmp/n")
        migrate(name, dst_name)
        assert running_on(edges, name) == [dst_name]
        assert read_file(dst, name, "/tmp/n") > before
        assert "kv" in dst.inspect_container(name)["NetworkSettings"]["Networks"][network]["Aliases"]
    finally:
        remove(edges, name, network=network)


def start_counter(api, name):
    api.pull(REGISTRY + "/simple", tag="latest")
    api.start(api.create_container(REGISTRY + "/simple:latest", name=name, command=MEMORY_COUNTER))
    time.sleep(1)
    return read_file(api, name, "/tmp/n")


def test_a_counter_moves_from_docker_28_to_26(edges):
    name, src_name, dst_name = "versions-from-28", system(edges, "sid"), system(edges, "trixie")
    src, dst = engine(edges[src_name]), engine(edges[dst_name])
    remove(edges, name)
    try:
        before = start_counter(src, name)
        migrate(name, dst_name)
        assert running_on(edges, name) == [dst_name]
        assert read_file(dst, name, "/tmp/n") > before
    finally:
        remove(edges, name)


def test_a_counter_moves_from_docker_28_to_20(edges):
    """runc 1.3's checkpoint (Docker 28.5) restored by runc 1.1.5 (Docker 20.10)."""
    name, src_name = "versions-28-to-20", system(edges, "sid")
    src, dst = engine(edges[src_name]), engine(edges["edge1"])
    remove(edges, name)
    try:
        before = start_counter(src, name)
        migrate(name, "edge1")
        assert running_on(edges, name) == ["edge1"]
        assert read_file(dst, name, "/tmp/n") > before
    finally:
        remove(edges, name)
