"""Migrations between Docker Engine versions. The lab's system edges (lab/labsystems.py) are
separate Debian systems, each with its own root file system and mount namespace, made
migration-ready only by playbooks/prepare_edges.yml over SSH (its second run changes nothing:
tests/lab/test_prepare_edges.py): bookworm runs Debian's Docker 20.10, trixie 26.1, sid 28.5.
The tests here use the system edges alone (labtools.on_systems)."""

import json
import os
import time

import docker
import pytest
from labtools import (
    ROOT,
    engine,
    lab_lock,
    on_systems,
    read_file,
    request,
    run,
    running_on,
    start_openface,
    system_edge,
    system_edges,
)

pytestmark = pytest.mark.lab

OPENFACE, OPENFACE_PORT, OPENFACE_MB = "versions-openface", 9999, 190
ENGINES = {"bookworm": "20.10.", "trixie": "26.1.", "sid": "28.5."}
DEBIAN_VERSIONS = {"bookworm": "12.", "trixie": "13.", "sid": "/sid"}
REGISTRY = "10.77.0.1:5000"
MEMORY_COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"]
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; echo $i > /data/n; sleep 0.1; done"]


@pytest.fixture(scope="module")
def edges():
    return system_edges()


def migrate(edges, name, destination, *extra):
    proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % destination,
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


def test_openface_goes_round_bookworm_trixie_sid_bookworm(edges):
    """bookworm (20.10) -> trixie (26.1) -> sid (28.5) -> bookworm, the counter and the checksum
    kept at each hop. Docker 28 (containerd 2) cannot restore a container with its own network
    namespace (moby#50750): the hop to sid is refused before the warm-up and the service goes on
    where it was, untouched; the ring goes on from there."""
    bookworm, trixie, sid = system_edge(edges, "bookworm"), system_edge(edges, "trixie"), system_edge(edges, "sid")
    start_openface(edges, OPENFACE, OPENFACE_PORT, OPENFACE_MB, host=bookworm)
    try:
        checksum = request(edges[bookworm], OPENFACE_PORT, "SUM")["sha256"]
        count = request(edges[bookworm], OPENFACE_PORT, "GET")["count"]
        where = bookworm
        for destination in (trixie, sid, bookworm):
            if destination == sid:
                proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % OPENFACE, "-e",
                                  "destination=%s" % sid, check=False)
                assert proc.returncode != 0
                assert "%s runs Docker %s" % (sid, edges[sid]["engine"]) in proc.stdout, proc.stdout[-3000:]
                assert "moby#50750" in proc.stdout
                assert "TASK [migration : Warm-up" not in proc.stdout  # refused before the warm-up checkpoint
                assert engine(edges[sid]).containers(all=True, filters={"name": OPENFACE}) == []
            else:
                migrate(edges, OPENFACE, destination)
                where = destination
            assert running_on(edges, OPENFACE) == [where]
            answer = request(edges[where], OPENFACE_PORT, "SUM")
            assert answer["sha256"] == checksum, "state changed on the way to %s" % destination
            assert answer["count"] == count, "the counter did not go on on %s (towards %s)" % (where, destination)
            count = request(edges[where], OPENFACE_PORT, "GET")["count"]
    finally:
        remove(edges, OPENFACE)


def test_openface_moves_from_docker_28_to_20(edges):
    """A checkpoint of runc 1.3 (Docker 28.5, containerd 2.1) restored by runc 1.1.5 (Docker 20.10)."""
    sid, bookworm = system_edge(edges, "sid"), system_edge(edges, "bookworm")
    start_openface(edges, OPENFACE, OPENFACE_PORT, OPENFACE_MB, host=sid)
    try:
        checksum = request(edges[sid], OPENFACE_PORT, "SUM")["sha256"]
        count = request(edges[sid], OPENFACE_PORT, "GET")["count"]
        migrate(edges, OPENFACE, bookworm)
        assert running_on(edges, OPENFACE) == [bookworm]
        answer = request(edges[bookworm], OPENFACE_PORT, "SUM")
        assert answer["sha256"] == checksum and answer["count"] == count
    finally:
        remove(edges, OPENFACE)


def test_layer_and_volume_move_from_docker_20_to_26(edges):
    name, volume = "versions-layer", "versions-data"
    src_name, dst_name = system_edge(edges, "bookworm"), system_edge(edges, "trixie")
    src, dst = engine(edges[src_name]), engine(edges[dst_name])
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
        migrate(edges, name, dst_name, "-e", "migrate_volumes=true")
        assert running_on(edges, name) == [dst_name]
        assert read_file(dst, name, "/tmp/n") > before
        assert dst.exec_start(dst.exec_create(name, ["cat", "/layer-file"])).decode().strip() == "made-on-20"
        assert read_file(dst, name, "/data/n") > before
    finally:
        remove(edges, name, volume)


def test_user_network_moves_from_docker_20_to_26(edges):
    name, network = "versions-netted", "versions-net"
    src_name, dst_name = system_edge(edges, "bookworm"), system_edge(edges, "trixie")
    src, dst = engine(edges[src_name]), engine(edges[dst_name])
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
        migrate(edges, name, dst_name)
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
    name, src_name, dst_name = "versions-from-28", system_edge(edges, "sid"), system_edge(edges, "trixie")
    src, dst = engine(edges[src_name]), engine(edges[dst_name])
    remove(edges, name)
    try:
        before = start_counter(src, name)
        migrate(edges, name, dst_name)
        assert running_on(edges, name) == [dst_name]
        assert read_file(dst, name, "/tmp/n") > before
    finally:
        remove(edges, name)


@pytest.fixture
def sid_on_containerd_store(edges):
    """The sid edge's Docker switched to the containerd image store ("containerd-snapshotter" in
    the features of its daemon.json), switched back afterwards."""
    name = system_edge(edges, "sid")
    path = os.path.join(edges[name]["root"], "etc/docker/daemon.json")
    with open(path) as handle:
        original = handle.read()
    settings = json.loads(original)
    settings["features"] = dict(settings.get("features") or {}, **{"containerd-snapshotter": True})

    def restart_docker(text):
        # Under the lab's lock: a `lab/lab up` of a test beside this one would see this Docker
        # down and start it as at boot, in the middle of the restart.
        held = lab_lock()
        try:
            with open(path, "w") as handle:
                handle.write(text)
            run([os.path.join(ROOT, "lab", "lab"), "exec", name, "--", "service", "docker", "restart"])
            for _ in range(100):
                try:
                    return engine(edges[name]).info()
                except docker.errors.DockerException:
                    time.sleep(0.2)
        finally:
            os.close(held)
        raise AssertionError("Docker on %s did not come back" % name)

    try:
        info = restart_docker(json.dumps(settings, indent=4))
        assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"], info["DriverStatus"]
        yield name
    finally:
        remove(edges, "versions-containerd-store")
        restart_docker(original)


def test_the_containerd_image_store_is_refused_before_anything_is_frozen(edges, sid_on_containerd_store):
    """On the containerd image store an image is known by its manifest's digest and the engine
    names no layer directory: a migration from or to such an edge stops in its pre-flight."""
    sid, name = sid_on_containerd_store, "versions-containerd-store"
    api = engine(edges[sid])
    before = start_counter(api, name)
    for extra in ([], ["-e", "migrate_layer=false"]):
        proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % name,
                          "-e", "destination=%s" % system_edge(edges, "trixie"), *extra, check=False)
        assert proc.returncode != 0
        assert "'%s' on %s keeps images and container layers in the containerd image store" % (name, sid) \
            in " ".join(proc.stdout.split()), proc.stdout[-3000:]
        assert "Nothing was frozen" in proc.stdout and "TASK [migration : Warm-up" not in proc.stdout
        assert running_on(edges, name) == [sid]
        assert read_file(api, name, "/tmp/n") > before, "the service was interrupted"
    remove(edges, name)
    # To it (past the engine-bug refusal of Docker 28, to reach the storage check).
    bookworm = system_edge(edges, "bookworm")
    before = start_counter(engine(edges[bookworm]), name)
    proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % sid,
                      "-e", "migration_refuse_engine_bugs=false", check=False)
    assert proc.returncode != 0
    assert "%s keeps images and container layers in the containerd image store" % sid \
        in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert "TASK [migration : Warm-up" not in proc.stdout
    assert running_on(edges, name) == [bookworm]
    assert api.containers(all=True, filters={"name": name}) == []
