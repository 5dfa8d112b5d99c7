"""What the lab tests share: the lab's hosts, running playbooks, asking services, finding
containers and memory images on the hosts."""

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import docker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
REPORTS = os.path.join(ROOT, "reports")

sys.path.insert(0, ROOT)  # the bench package: the lab client and the prober
from bench import labclient  # noqa: E402
from bench.prober import read_reply  # noqa: E402

lab_lock = labclient.lab_lock  # the lab's own lock: held, `lab/lab up` waits


def run(cmd, check=True, timeout=120, **kw):
    """Run a command; with check, fail the test with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert proc.returncode == 0, "%s failed (rc=%d):\n%s\n%s" % (
            " ".join(cmd), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


# tests/run-all runs the system edges' tests beside the others, and some of either restart a
# daemon on purpose: a lab not fully up is asked again for this long before a test gives up.
LAB_UP_WAIT_S = 60


def lab_status(require_up=False):
    """`lab/lab status --json`, parsed; with require_up, the lab must be (or soon be) fully up."""
    return labclient.lab_status(require_up, wait_s=LAB_UP_WAIT_S if require_up else 0)


def lab_hosts():
    """The lab's hosts by name; fails when the lab is not up."""
    try:
        hosts = labclient.lab_hosts(wait_s=LAB_UP_WAIT_S)
    except labclient.LabNotUp as exc:
        raise AssertionError(str(exc)) from None
    assert len(hosts) >= 2
    return hosts


def playbook(*args, check=True):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, "ansible-playbook %s failed:\n%s\n%s" % (" ".join(args), proc.stdout[-6000:],
                                                                             proc.stderr[-3000:])
    return proc


SYSTEMS_INVENTORIES = ["-i", "inventory/lab", "-i", "inventory/lab-systems"]
RELEASES = ("bookworm", "trixie", "sid")


def system_edges():
    """The lab's system edges by name (lab/labsystems.py), each with its release and a
    docker_host the controller reaches; fails when the lab lacks one of RELEASES."""
    systems = {s["name"]: s for s in lab_status().get("systems") or []}
    assert {s["release"] for s in systems.values()} >= set(RELEASES), \
        "the lab lacks a %s system edge: make lab (LAB_RELEASES=%s)" % (" or ".join(RELEASES), ",".join(RELEASES))
    # Whether edge1..N are up does not matter here: a test beside these may stop one of them.
    down = sorted(name for name, s in systems.items() if not (s.get("sshd") and s.get("dockerd")))
    assert not down, "system edges not up (make lab): %s" % ", ".join(down)
    return systems


def system_edge(edges, release):
    return next(name for name, e in edges.items() if e.get("release") == release)


def on_systems(edges, *args, check=True):
    """A playbook run on the system edges alone (--limit): edge1..N are neither asked nor
    touched, so that these tests can run beside the tests of edge1..N (tests/run-all)."""
    return playbook(*SYSTEMS_INVENTORIES, "--limit", ",".join(["localhost", *sorted(edges)]), *args, check=check)


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


def start_openface(lab, name, port, state_mb, host="edge1", attempts=300):
    """The openface stand-in started by hand on host (none of that name left on any host), its
    port 9999 published on `port`, once it answers."""
    remove_everywhere(lab, name)
    api = engine(lab[host])
    image = "10.77.0.1:5000/openface-standin:latest"
    api.pull(image)
    container = api.create_container(image, name=name, environment={"STATE_MB": str(state_mb)}, ports=[9999],
                                     host_config=api.create_host_config(port_bindings={9999: port}))
    api.start(container["Id"])
    request(lab[host], port, "GET", attempts=attempts)


def request(host, port, line, attempts=50):
    """One request to a service by the host's lab address; retried while it comes up."""
    for _attempt in range(attempts):
        try:
            with socket.create_connection((host["address"], port), timeout=5) as conn:
                conn.sendall(line.encode() + b"\n")
                data = read_reply(conn)
                if data:
                    return json.loads(data)
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("%s:%s did not answer %s" % (host["address"], port, line))


def read_file(api, container, path, attempts=20):
    """The number a counter keeps in a file. `echo $i > file` truncates before it writes, so
    a read can land between the two and see the file empty: read again then."""
    text = ""
    for _attempt in range(attempts):
        text = api.exec_start(api.exec_create(container, ["cat", path])).decode().strip()
        if text:
            return int(text)
        time.sleep(0.05)
    raise AssertionError("%s in %s stayed empty" % (path, container))


# Where Ansible's background jobs leave their status files on the edges (the lab's edges are
# root on this machine): a finished one holds the job's arguments, a container's configuration.
ASYNC_DIR = os.path.expanduser("~root/.ansible_async")


def job_files_naming(name):
    """Background jobs' status files on the edges that mention `name` (a container, a claim path)."""
    found = []
    for entry in sorted(os.listdir(ASYNC_DIR)) if os.path.isdir(ASYNC_DIR) else []:
        path = os.path.join(ASYNC_DIR, entry)
        try:
            with open(path, errors="replace") as handle:
                if name in handle.read():
                    found.append(path)
        except OSError:
            pass
    return found


def memory_images_left(lab):
    """Files under each host's checkpoint directory and checkpoints left in Docker's data root."""
    left = []
    for host in lab.values():
        for root, dirs, files in os.walk(host["checkpoint_dir"]):
            if root == host["checkpoint_dir"] and "locks" in dirs:
                dirs.remove("locks")  # the migration locks (module_utils/edge_lock.py), no images
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


_SCRATCH = []
_HOOKS = itertools.count(1)


def scratch_path(name):
    """A path in this test process's scratch directory, removed when the process ends."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="edge-test-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return os.path.join(_SCRATCH[0], name)


def hook(script):
    """A migration hook: run this Python snippet on the controller (as the product runs any command)."""
    path = scratch_path("hook-%d.py" % next(_HOOKS))
    with open(path, "w") as handle:
        handle.write(script)
    return "%s %s" % (sys.executable, path)


def spoil_in_layer(docker_host, container, pattern, record):
    """Hook command: make the first file matching `pattern` (a glob inside the image, e.g. a
    binary the service maps) 4 KB longer in the container's file system on that engine
    (through its mounted root when it has one: overlayfs does not see changes made under a
    mounted layer), so that CRIU's restore refuses it ("has bad size"). The path and the
    original size go to `record` for undo_spoil."""
    return hook(
        "import docker, glob, json, os, shutil\n"
        "api = docker.APIClient(base_url=%r)\n"
        "data = api.inspect_container(%r)['GraphDriver']['Data']\n"
        "pattern = %r\n"
        "source = [d for d in data['LowerDir'].split(':') if glob.glob(d + pattern)][0]\n"
        "binary = sorted(glob.glob(source + pattern))[0]\n"
        "size = os.path.getsize(binary)\n"
        "if os.path.ismount(data['MergedDir']):\n"
        "    target = data['MergedDir'] + binary[len(source):]\n"
        "else:\n"
        "    target = data['UpperDir'] + binary[len(source):]\n"
        "    os.makedirs(os.path.dirname(target), exist_ok=True)\n"
        "    shutil.copy2(binary, target)\n"
        "open(target, 'ab').write(b'0' * 4096)\n"
        "json.dump([target, size], open(%r, 'w'))\n" % (docker_host, container, pattern, record))


def undo_spoil(record):
    with open(record) as handle:
        target, size = json.load(handle)
    os.truncate(target, size)
