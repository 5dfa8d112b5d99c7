"""The destination's lazy restore (CRIU's lazy-pages daemon on the edge-migrate runtime) and
its neighbor entries, on real daemons, CRIU and SSH: the moved process finds every byte of its
memory as it was, the daemon handed every page over, and the destination host already knows
the container's MAC address when the migration ends."""

import json
import subprocess
import time

import pytest
from labtools import engine, latest_report, memory_images_left, playbook, remove_everywhere, running_on

pytestmark = pytest.mark.lab

PYTHON = "10.77.0.1:5000/openface-standin:latest"
# 48 MB of distinct pages (a hash chain), their digest taken once at the start; then, ten times
# a second, the digest of the memory as it is now and a counter, on its output (no file is
# open at the checkpoint). A page that came back as zeros (or from another page) changes the digest.
HOLDER = r"""
import hashlib, json, time
block = bytearray()
seed = b"edge"
while len(block) < 48 * 2**20:
    seed = hashlib.sha256(seed).digest()
    block += seed * 128
first = hashlib.sha256(block).hexdigest()
i = 0
while True:
    i += 1
    print(json.dumps({"count": i, "first": first, "now": hashlib.sha256(block).hexdigest()}), flush=True)
    time.sleep(0.1)
"""


def state(api, name):
    """The last line the holder printed (on this host's engine)."""
    text = ""
    for _attempt in range(50):
        lines = api.logs(name, tail=1).decode().strip().splitlines()
        text = lines[-1] if lines else ""
        if text.startswith("{"):
            return json.loads(text)
        time.sleep(0.1)
    raise AssertionError("no state from %s: %r" % (name, text))


def start_holder(lab, name, script, **create):
    """Start `script` as container `name` on edge1; returns its first state."""
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(PYTHON)
    source.start(source.create_container(PYTHON, name=name, entrypoint=["python3", "-c"], command=[script], **create))
    for _attempt in range(100):
        try:
            return state(source, name)
        except AssertionError:
            time.sleep(0.2)
    return state(source, name)


def test_lazily_restored_memory_is_whole_and_the_host_knows_the_container(lab):
    name = "lazy-holder"
    before = start_holder(lab, name, HOLDER, ports=[7100], host_config=engine(lab["edge1"]).create_host_config(
        port_bindings={"7100/tcp": 17100}))
    try:
        playbook("migrate.yml", "-e", "service=%s" % name, "-e", "destination=edge2")
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        time.sleep(0.5)
        after = state(destination, name)
        assert after["count"] > before["count"], "the process restarted (%s, then %s)" % (before, after)
        assert after["first"] == before["first"] and after["now"] == before["first"], (
            "the memory changed in the move: %s before, %s after" % (before, after))
        report = latest_report(name)
        # The busy holder's cgroup was frozen before the final dump: CRIU did not wait for it
        # in its 100 ms steps.
        assert "prefrozen_s" in report["criu"]["dump"] and report["criu"]["dump"]["freezing_time"] < 0.05, (
            report["criu"]["dump"])
        assert "lazy-pages" in report["criu"]["restore_options"]
        assert report["criu"]["lazy_pages"]["rc"] == 0 and "retried" not in report["criu"]["lazy_pages"]
        # Most pages came through the daemon, not through CRIU's restore itself.
        assert report["criu"]["restore"]["pages_restored"] < 48 * 2**20 // 4096 // 4
        network = destination.inspect_container(name)["NetworkSettings"]["Networks"]["bridge"]
        assert report["neighbors"] == [{"network": "bridge", "address": network["IPAddress"],
                                        "mac": network["MacAddress"], "device": "docker0"}]
        neighbor = subprocess.run(["ip", "netns", "exec", "edgelab-edge2", "ip", "neigh", "show",
                                   network["IPAddress"], "dev", "docker0"], capture_output=True, text=True)
        assert "lladdr %s" % network["MacAddress"] in neighbor.stdout, neighbor.stdout
        assert memory_images_left(lab) == []
        # No lazy-pages daemon is left behind on the destination (other edges may be restoring).
        daemons = subprocess.run(["pgrep", "-af", "lazy-pages"], capture_output=True, text=True).stdout
        assert lab["edge2"]["checkpoint_dir"] not in daemons, daemons
    finally:
        remove_everywhere(lab, name)


# The holder with an 8 TiB reservation it never touches, made as MariaDB's InnoDB makes one:
# no access, no MAP_NORESERVE (mmap's prot=0).
RESERVER = ("import mmap\n"
            "reservation = mmap.mmap(-1, 8 << 40, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)\n" + HOLDER)


def test_a_reservation_no_host_could_commit_is_restored_in_one_go_from_the_start(lab):
    # A lazy restore would map the reservation writable and the kernel refuse it (larger
    # than the host's memory and swap): the restore in one go after that failure cost about a
    # second of downtime. The destination now sees it in the images and restores in one go.
    name = "lazy-reserver"
    before = start_holder(lab, name, RESERVER)
    try:
        playbook("migrate.yml", "-e", "service=%s" % name, "-e", "destination=edge2")
        assert running_on(lab, name) == ["edge2"]
        time.sleep(0.5)
        after = state(engine(lab["edge2"]), name)
        assert after["count"] > before["count"] and after["now"] == before["first"], (before, after)
        report = latest_report(name)
        lazy = report["criu"]["lazy_pages"]
        assert "retried" not in lazy, lazy
        assert "8.0 TiB" in lazy["skipped"] and "restored in one go" in lazy["skipped"], lazy
        assert "lazy-pages" not in report["criu"]["restore_options"]
        assert memory_images_left(lab) == []
    finally:
        remove_everywhere(lab, name)
