"""The lab's life cycle: recovery after its daemons are killed, and a `down` that leaves
nothing behind. These run after every other test (tests/conftest.py) and leave the lab up."""

import functools
import os
import re
import signal
import socket
import subprocess
import time

import labtools
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.lab_lifecycle]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "lab", "lab")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MARKERS = ("/run/edgelab", "/var/lib/edgelab")
DAEMONS = ("dockerd", "containerd", "containerd-shim-runc-v2", "docker-registry", "sshd", "docker-proxy")


# Taking the lab down and up again takes longer than the other lab tests' commands.
run = functools.partial(labtools.run, timeout=300)


def lab(*args, check=True, timeout=600):
    return run([LAB, *args], check=check, timeout=timeout)


def processes():
    """Live (non-zombie) processes: pid -> (comm, cmdline)."""
    found = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                stat = f.read()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cl = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/comm" % p) as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            continue
        found[int(p)] = (comm, cl)
    return found


def lab_daemons():
    return {pid: cl for pid, (comm, cl) in processes().items()
            if any(m in cl for m in MARKERS) and any(d in comm or d in cl.split(" ")[0] for d in DAEMONS)}


def ping_edges():
    return run([os.path.join(VENV_BIN, "ansible"), "edges", "-i", "inventory/lab", "-m", "ping"],
               cwd=ROOT, check=False, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def leave_the_lab_up():
    yield
    proc = lab("up", check=False)
    assert proc.returncode == 0, "could not bring the lab back up:\n%s\n%s" % (proc.stdout, proc.stderr)


def test_up_recovers_after_every_daemon_is_killed():
    st = labtools.lab_status(require_up=True)
    edge1 = st["hosts"][0]
    name = "labtest-survivor-%d" % os.getpid()
    run([LAB, "exec", "edge1", "--", "docker", "run", "-d", "--name", name, "-p", "9999:9999",
         "10.77.0.1:5000/simple:latest"])
    time.sleep(1)
    victims = lab_daemons()
    kinds = {os.path.basename(cl.split(" ")[0]) for cl in victims.values()}
    assert {"dockerd", "containerd", "containerd-shim-runc-v2", "docker-registry"} <= kinds, kinds
    assert any("sshd" in cl for cl in victims.values())
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(1)
    assert not lab_daemons(), lab_daemons()
    assert lab("status", "--json", check=False).returncode != 0
    for h in st["hosts"]:  # (ssh sessions already open, such as Ansible's ControlPersist, live on)
        with pytest.raises(OSError):
            socket.create_connection((h["address"], 22), timeout=2).close()

    proc = lab("up")
    assert "recovered after a dead dockerd" in proc.stdout, proc.stdout
    assert "edge lab is up" in proc.stdout
    ping = ping_edges()
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert labtools.lab_status()["up"]
    # the killed daemon's container is kept, stopped (it has no restart policy)
    state = run([LAB, "exec", "edge1", "--", "docker", "inspect", "-f", "{{.State.Status}}", name]).stdout
    assert state.strip() == "exited"
    run([LAB, "exec", "edge1", "--", "docker", "rm", "-f", name])
    # and the host works again: a new container runs and publishes its port
    run([LAB, "exec", "edge1", "--", "docker", "run", "-d", "--name", name, "-p", "9999:9999",
         "10.77.0.1:5000/simple:latest"])
    time.sleep(1)
    out = run([LAB, "exec", "edge1", "--", "busybox", "nc", edge1["address"], "9999"], stdin=subprocess.DEVNULL)
    assert int(out.stdout) > 0
    run([LAB, "exec", "edge1", "--", "docker", "rm", "-f", name])
    second = lab("up")
    assert "nothing to change" in second.stdout, second.stdout


def test_down_leaves_nothing_behind():
    lab("down")
    netns = run(["ip", "netns", "list"]).stdout
    assert "edgelab-" not in netns, netns
    links = run(["ip", "-o", "link", "show"]).stdout
    assert not re.search(r"\d+: (edgelab0|el-edge\d+)[:@]", links), links
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    left = [m for m in mounts if m.startswith(("/var/lib/edgelab", "/run/edgelab", "/run/netns/edgelab-"))]
    assert not left, left
    procs = {pid: cl for pid, (comm, cl) in processes().items() if "edgelab" in cl}
    assert not procs, procs
    for path in ("/var/lib/edgelab", "/run/edgelab", os.path.join(ROOT, "inventory", "lab", "hosts.yml")):
        assert not os.path.exists(path), path
    cgroups = [d for d in os.listdir("/sys/fs/cgroup/memory") if d.startswith("edgelab")] \
        if os.path.isdir("/sys/fs/cgroup/memory") else []
    assert not cgroups, cgroups

    proc = lab("up")
    assert "edge lab is up" in proc.stdout
    assert labtools.lab_status()["up"]
    assert ping_edges().returncode == 0
