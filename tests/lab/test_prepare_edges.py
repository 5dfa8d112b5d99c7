"""playbooks/prepare_edges.yml on the lab's edges: run twice (`lab up` ran it first), the second
run changes nothing;
afterwards every edge pushes files to every other edge with rsync over SSH, with its own key
and the host keys the role pinned, and `criu check` passes on every edge."""

import os
import re
import shlex
import subprocess

import pytest
from labtools import ROOT, engine, lab_status, playbook, run

pytestmark = pytest.mark.lab

LAB = os.path.join(ROOT, "lab", "lab")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(stdout):
    """{host: {ok, changed, unreachable, failed}} from a PLAY RECAP."""
    return {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:]), strict=True))
            for m in RECAP.finditer(stdout)}


def on(host, *cmd, check=True):
    return run([LAB, "exec", host["name"], "--", *cmd], check=check, timeout=120)


# `lab up` runs the playbook on the edges it brings up and keeps its output here.
LAB_RUN_LOG = "/var/log/edgelab/prepare_edges.log"
SYSTEMS_INVENTORY = os.path.join(ROOT, "inventory", "lab-systems", "hosts.yml")


def every_edge(lab):
    """The edges the playbook prepares: the lab's hosts and its system edges (lab/labsystems.py),
    all in one `edges` group, as `lab up` runs it (SSH trust is set up among all of them)."""
    return set(lab) | {s["name"] for s in lab_status().get("systems") or []}


def inventories():
    return ["-i", "inventory/lab"] + (["-i", SYSTEMS_INVENTORY] if os.path.exists(SYSTEMS_INVENTORY) else [])


@pytest.fixture(scope="module")
def runs(lab):
    try:
        with open(LAB_RUN_LOG) as handle:
            first = recap(handle.read())
    except OSError:
        first = {}
    if set(first) != every_edge(lab):  # the lab's run is not there (or of other edges): the test's own
        first = recap(playbook(*inventories(), "playbooks/prepare_edges.yml").stdout)
    second = playbook(*inventories(), "playbooks/prepare_edges.yml")
    return first, recap(second.stdout), second.stdout


def test_second_run_changes_nothing(lab, runs):
    first, second, _ = runs
    assert set(first) == set(second) == every_edge(lab), (first, second)
    for host, counts in second.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, (host, counts)
        assert counts["changed"] == 0, "second run changed %d things on %s" % (counts["changed"], host)


def test_every_edge_pushed_to_every_other_in_the_run(lab, runs):
    """The playbook's own check, on every ordered pair of edges (system edges included): rsync
    over SSH with the pinned host keys, and the key can do nothing else there."""
    edges = every_edge(lab)
    for name in edges:
        for other in edges - {name}:
            assert re.search(r"ok: \[%s\] => \(item=%s\)" % (name, other), runs[2]), (name, other)


def test_edges_run_experimental_docker_with_the_runtime(lab, runs):
    for host in lab.values():
        info = engine(host).info()
        assert info["ExperimentalBuild"], host["name"]
        assert "edge-migrate" in info["Runtimes"], (host["name"], info["Runtimes"])


def test_criu_dumps_and_restores_without_a_network_lock_where_it_can(runs):
    """No connection is restored (tcp-close): the lab's CRIU accepts network-lock skip, and the
    options runc hands CRIU say so (the lab's edges share this machine's /etc)."""
    assert subprocess.run(["criu", "--network-lock", "skip", "--version"], capture_output=True).returncode == 0
    options = [line.strip() for line in open("/etc/criu/runc.conf") if line.strip() and not line.startswith("#")]
    assert options == ["tcp-close", "skip-in-flight", "network-lock skip"], options


def ssh(src, known_hosts):
    return " ".join(shlex.quote(a) for a in [
        "ssh", "-i", src["ssh_key"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + known_hosts,
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"])


def test_every_edge_rsyncs_to_every_other_with_pinned_host_keys(lab, runs, tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(256 * 1024))
    for src in lab.values():
        with open(src["known_hosts"]) as handle:
            pinned = handle.read()
        assert "# BEGIN edge-migrate: the edges' host keys" in pinned, src["known_hosts"]
        for dst in lab.values():
            if dst is src:
                continue
            with open(os.path.join(os.path.dirname(dst["ssh_key"]), "ssh_host_ed25519_key.pub")) as handle:
                host_key = " ".join(handle.read().split()[:2])
            assert "%s %s" % (dst["address"], host_key) in pinned, (src["name"], dst["name"])
            # into the destination's workdir: the other edges' keys write nowhere else
            target = os.path.join(dst["checkpoint_dir"], "prepare-test-%s-to-%s" % (src["name"], dst["name"]))
            try:
                on(src, "rsync", "-a", "-e", ssh(src, src["known_hosts"]), str(payload),
                   "root@%s:%s" % (dst["address"], target))
                assert open(target, "rb").read() == payload.read_bytes()
            finally:
                if os.path.exists(target):
                    os.remove(target)
    # the pinning is what lets them in: with no host key pinned the same push is refused
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    src, dst = list(lab.values())[:2]
    refused = os.path.join(dst["checkpoint_dir"], "prepare-test-refused")
    proc = on(src, "rsync", "-a", "-e", ssh(src, str(empty)), str(payload),
              "root@%s:%s" % (dst["address"], refused), check=False)
    assert proc.returncode != 0 and "Host key verification failed" in proc.stderr, proc.stderr
    assert not os.path.exists(refused)


def test_criu_check_passes_on_every_edge(lab, runs):
    for host in lab.values():
        proc = on(host, "criu", "check")
        assert "Looks good" in proc.stdout + proc.stderr, (host["name"], proc.stdout, proc.stderr)


def test_the_run_reports_each_edge_criu_version(lab, runs):
    _, _, stdout = runs
    flat = " ".join(stdout.split())  # the play's output wraps long messages at any space
    for name in lab:
        assert re.search(r"%s: Docker \S+ \(experimental, runtimes [^)]*edge-migrate[^)]*\), CRIU \d+\.\d+" % name,
                         flat), stdout[-3000:]
