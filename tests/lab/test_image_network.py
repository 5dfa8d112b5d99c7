"""Containers as people run them, in the lab: an image that exists only on the source, a
user-defined network, a tag moved in the registry after the source pulled it. Real dockerd
per host, real registry, real SSH."""

import os
import re
import time

import docker
import pytest
from labtools import (
    REPORTS,
    engine,
    latest_report,
    memory_images_left,
    playbook,
    read_file,
    remove_everywhere,
    running_on,
)

pytestmark = pytest.mark.lab

REGISTRY = "10.77.0.1:5000"
BASE = REGISTRY + "/simple:latest"
COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"]


def migrate(service, destination="edge2", strategy="delta", check=True, *extra):
    """migrate.yml with -v, so that the modules' results are in the output."""
    before = set(os.listdir(REPORTS)) if os.path.isdir(REPORTS) else set()
    proc = playbook("migrate.yml", "-v", "-e", "service=%s" % service, "-e", "destination=%s" % destination,
                    "-e", "strategy=%s" % strategy, *extra, check=check)
    if check:
        assert "MIGRATED" in proc.stdout
        assert len(set(os.listdir(REPORTS)) - before) >= 1
        report = latest_report(service)
        assert report["outcome"] == "migrated" and report["destination"] == destination
    return proc


def results(stdout, key):
    """The values of a key in the modules' results that -v printed (YAML)."""
    return [value.strip().strip("'\"") for value in re.findall(r"^\s*%s: (.*)$" % key, stdout, re.MULTILINE)]


def images_left(lab, service, container_id):
    """Memory images of this service's migration left on the hosts (other tests may be
    migrating their own services meanwhile)."""
    return [path for path in memory_images_left(lab)
            if "/work/%s-" % service in path or "/containers/%s/" % container_id in path]


def remove_images(lab, *images):
    for host in lab.values():
        for image in images:
            try:
                engine(host).remove_image(image, force=True)
            except docker.errors.NotFound:
                pass


def remove_networks(lab, name):
    for host in lab.values():
        try:
            engine(host).remove_network(name)
        except docker.errors.NotFound:
            pass


def commit(api, base, name, content, repository, tag):
    """An image made on this engine only: base with one file changed, under a local tag."""
    builder = api.create_container(base, name=name, command=["sh", "-c", "echo %s > /marker" % content])
    try:
        api.start(builder)
        api.wait(builder, timeout=30)
        return api.commit(builder, repository=repository, tag=tag)["Id"]
    finally:
        api.remove_container(builder, force=True)


def run_counter(api, image, name, **create):
    container = api.create_container(image, name=name, command=COUNTER, **create)
    api.start(container)
    time.sleep(1)
    before = read_file(api, name, "/tmp/n")
    assert before > 3
    return before


def cat(api, container, path):
    return api.exec_start(api.exec_create(container, ["cat", path])).decode().strip()


@pytest.mark.parametrize("strategy", ["delta", "cold", "seed-delta"])
def test_image_made_on_the_source_only_moves_by_its_id(lab, strategy):
    """`docker commit` on edge1 under a tag no registry has: the destination cannot pull it,
    the source sends it (without the base layer edge2 already has) and edge2 loads it."""
    name, image = "imgnet-committed", "imgnet-local/committed:v1"
    src, dst = engine(lab["edge1"]), engine(lab["edge2"])
    remove_everywhere(lab, name)
    remove_images(lab, image)
    src.pull(BASE)
    dst.pull(BASE)  # the destination has the base layer: only the committed one is sent
    image_id = None
    try:
        image_id = commit(src, BASE, "imgnet-builder", "committed-on-edge1", "imgnet-local/committed", "v1")
        assert src.inspect_image(image_id)["RepoDigests"] == []
        before = run_counter(src, image, name)
        # seed-delta copies no layer; the counter is in the shell's memory and rewrites its file.
        extra = ["-e", "migrate_layer=false"] if strategy == "seed-delta" else []
        proc = migrate(name, "edge2", strategy, True, *extra)
        assert running_on(lab, name) == ["edge2"]
        moved = dst.inspect_container(name)
        assert moved["Image"] == image_id, "edge2 runs another image"
        assert moved["Config"]["Image"] == image
        assert dst.inspect_image(image)["Id"] == image_id
        assert cat(dst, name, "/marker") == "committed-on-edge1"
        assert results(proc.stdout, "layers_total") == ["2"] and results(proc.stdout, "layers_sent") == ["1"]
        assert "loaded" in results(proc.stdout, "how")
        if strategy != "cold":
            assert read_file(dst, name, "/tmp/n") >= before, "the counter restarted from zero"
        assert images_left(lab, name, moved["Id"]) == []
        assert not any(os.path.exists(os.path.join(host["checkpoint_dir"], entry, "image"))
                       for host in lab.values() if os.path.isdir(host["checkpoint_dir"])
                       for entry in os.listdir(host["checkpoint_dir"]))
    finally:
        remove_everywhere(lab, name)
        remove_images(lab, image, *([image_id] if image_id else []))


def test_container_on_a_user_network_keeps_network_alias_and_address(lab):
    """A bridge network made on edge1 only, with a subnet, a label, an option; the
    container has an alias and a static --ip there. edge2 gets the same network."""
    name, network, address = "imgnet-netted", "imgnet-net", "172.29.77.50"
    src, dst = engine(lab["edge1"]), engine(lab["edge2"])
    remove_everywhere(lab, name)
    remove_everywhere(lab, "imgnet-peer")
    remove_networks(lab, network)
    src.pull(BASE)
    try:
        src.create_network(network, driver="bridge", labels={"team": "edge"},
                           options={"com.docker.network.bridge.enable_icc": "true"},
                           ipam=docker.types.IPAMConfig(pool_configs=[
                               docker.types.IPAMPool(subnet="172.29.77.0/24", gateway="172.29.77.1")]))
        before = run_counter(
            src, BASE, name, host_config=src.create_host_config(network_mode=network),
            networking_config=src.create_networking_config(
                {network: src.create_endpoint_config(aliases=["kv"], ipv4_address=address)}))
        proc = migrate(name)
        assert re.search(r"created:\s*\n\s*- %s" % network, proc.stdout)
        assert running_on(lab, name) == ["edge2"]
        made = dst.inspect_network(network)
        assert made["Driver"] == "bridge" and made["Labels"] == {"team": "edge"}
        assert made["IPAM"]["Config"] == [{"Subnet": "172.29.77.0/24", "Gateway": "172.29.77.1"}]
        assert made["Options"]["com.docker.network.bridge.enable_icc"] == "true"
        endpoint = dst.inspect_container(name)["NetworkSettings"]["Networks"][network]
        assert endpoint["IPAddress"] == address
        assert endpoint["IPAMConfig"]["IPv4Address"] == address
        assert "kv" in endpoint["Aliases"]
        after = read_file(dst, name, "/tmp/n")
        assert after >= before, "the counter restarted from zero"
        # Another container on edge2's network finds the service by its alias.
        dst.pull(BASE)
        peer = dst.create_container(BASE, name="imgnet-peer", command=["sh", "-c", "ping -c 1 -W 3 kv"],
                                    host_config=dst.create_host_config(network_mode=network))
        dst.start(peer)
        assert dst.wait(peer, timeout=30)["StatusCode"] == 0, dst.logs(peer).decode()
        assert address in dst.logs(peer).decode()
        assert images_left(lab, name, dst.inspect_container(name)["Id"]) == []
    finally:
        remove_everywhere(lab, name)
        remove_everywhere(lab, "imgnet-peer")
        remove_networks(lab, network)


def test_network_of_that_name_with_another_subnet_is_refused_before_the_freeze(lab):
    name, network = "imgnet-clash", "imgnet-clashnet"
    src, dst = engine(lab["edge1"]), engine(lab["edge2"])
    remove_everywhere(lab, name)
    remove_networks(lab, network)
    src.pull(BASE)
    try:
        src.create_network(network, ipam=docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="172.29.78.0/24")]))
        dst.create_network(network, ipam=docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="172.29.79.0/24")]))
        before = run_counter(src, BASE, name, host_config=src.create_host_config(network_mode=network))
        proc = migrate(name, check=False)
        assert proc.returncode != 0
        assert "network %s exists on the destination but is not the source's" % network in proc.stdout
        assert "172.29.79.0/24" in proc.stdout and "172.29.78.0/24" in proc.stdout
        assert running_on(lab, name) == ["edge1"]
        assert read_file(src, name, "/tmp/n") > before, "the service stopped"
        report = latest_report(name)
        assert report["outcome"] == "failed", report  # nothing was frozen
        assert report["cause"].startswith("Networks | "), report["cause"]
    finally:
        remove_everywhere(lab, name)
        remove_networks(lab, network)


def test_tag_moved_in_the_registry_gives_the_destination_the_source_image(lab):
    """The source pulled imgnet-moving:v1 (image A); then v1 was pushed again (image B) and
    edge2 pulled that. The destination must run A, pulled by its digest, under the name v1."""
    name, repository = "imgnet-moved", REGISTRY + "/imgnet-moving"
    image = repository + ":v1"
    src, dst, other = engine(lab["edge1"]), engine(lab["edge2"]), engine(lab["edge3"])
    remove_everywhere(lab, name)
    remove_images(lab, image)
    made = []
    try:
        src.pull(BASE)
        made.append(commit(src, BASE, "imgnet-builder-a", "A", repository, "v1"))
        for event in src.push(repository, tag="v1", stream=True, decode=True):
            assert "error" not in event, event
        first = made[0]
        before = run_counter(src, image, name)
        other.pull(BASE)
        made.append(commit(other, BASE, "imgnet-builder-b", "B", repository, "v1"))
        for event in other.push(repository, tag="v1", stream=True, decode=True):
            assert "error" not in event, event
        dst.pull(repository, tag="v1")
        assert dst.inspect_image(image)["Id"] == made[1] != first
        proc = migrate(name)
        assert running_on(lab, name) == ["edge2"]
        moved = dst.inspect_container(name)
        assert moved["Image"] == first, "edge2 resolved the moved tag"
        assert moved["Config"]["Image"] == image
        assert cat(dst, name, "/marker") == "A"
        assert results(proc.stdout, "how") == ["pulled"]
        assert results(proc.stdout, "retagged_from") == [made[1]]
        assert read_file(dst, name, "/tmp/n") >= before
    finally:
        remove_everywhere(lab, name)
        remove_images(lab, image, *made)
