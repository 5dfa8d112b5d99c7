"""The edge lab as the benchmarks and the lab tests reach it: its status (the one reader of
`lab/lab status --json`), its hosts' Docker engines, link shaping with `lab/lab link`, the
link rate between two edges, ansible-playbook runs, and other people's playbooks in the shared lab."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.prober import ask_once, parse_count

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "lab" / "lab"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SERVICE_PORT = 9999  # the port the lab's service images listen on inside their container

# tc_rate_bits (bits per second of a tc rate, read as `lab/lab link` reads it) and the lab's lock
# are the lab's own, from lab/labnet.py and lab/labhosts.py (standard library only); bench.py,
# experiment/run.py and the lab tests import them from here.
sys.path.insert(0, str(LAB.parent))
from labhosts import lock as lab_lock  # noqa: E402, F401 - the lab's lock, for changes made beside `lab/lab`
from labnet import tc_rate_bits  # noqa: E402, F401


class LabNotUp(RuntimeError):
    """`lab/lab status --json` says the lab is not fully up."""


def lab_status(require_up=False, wait_s=0.0):
    """`lab/lab status --json`, parsed ({} when it printed nothing); with require_up, LabNotUp
    unless the lab is fully up, asked again for up to wait_s seconds (a daemon that another
    user of the lab restarts is down for a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        proc = subprocess.run([str(LAB), "status", "--json"], capture_output=True, text=True, check=False)
        status = json.loads(proc.stdout or "{}")
        if not require_up or (proc.returncode == 0 and status.get("up")):
            return status
        if time.monotonic() >= deadline:
            raise LabNotUp("the lab is not up (make lab): %s" % proc.stderr.strip())
        time.sleep(0.5)


def lab_hosts(status=None, wait_s=0.0):
    """The lab's edge hosts by name (from `status`, else from the lab, which must be up)."""
    status = lab_status(require_up=True, wait_s=wait_s) if status is None else status
    return {host["name"]: host for host in status["hosts"]}


class Lab:
    """The lab's hosts and registry; refuses to start unless the lab is up with the hosts `needed`."""

    def __init__(self, needed=()):
        status = lab_status()
        if not status.get("up"):
            raise SystemExit("the lab is not up: run `make lab`")
        self.hosts = lab_hosts(status)
        self.registry = status["registry"]["address"]
        self.known_hosts = status["known_hosts"]
        for name in needed:
            if name not in self.hosts:
                raise SystemExit("the lab has no host %s" % name)

    def api(self, host):
        import docker
        return docker.APIClient(base_url=self.hosts[host]["docker_host"], version="auto", timeout=300)

    def address(self, host):
        return self.hosts[host]["address"]

    def link(self, host, rate=None, delay=None, clear=False):
        argv = [str(LAB), "link", host] + (["--clear"] if clear else ["--rate", rate] + (
            ["--delay", delay] if delay else []))
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def remove_everywhere(self, name):
        import docker
        for host in self.hosts:
            try:
                self.api(host).remove_container(name, force=True)
            except docker.errors.NotFound:
                pass

    def start_service(self, host, name, service, host_port, labels):
        """Start `service` (image from the lab's registry, environment) as container `name` on
        `host`, its port published on `host_port`."""
        import docker
        api = self.api(host)
        image = "%s/%s" % (self.registry, service["image"])
        repository, tag = image.rsplit(":", 1)
        try:
            api.inspect_image(image)
        except docker.errors.ImageNotFound:
            api.pull(repository, tag=tag)
        host_config = api.create_host_config(port_bindings={SERVICE_PORT: host_port})
        container = api.create_container(image, name=name, environment=service["env"], ports=[SERVICE_PORT],
                                         host_config=host_config, labels=labels)
        api.start(container["Id"])

    def wait_answer(self, host, port, timeout=180):
        """The service's counter on `host` once it answers."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                return parse_count(ask_once(self.address(host), port))
            except (OSError, ValueError) as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError("the service on %s did not answer within %d s: %s" % (host, timeout, last))

    def measure_rate(self, source, destination, size_mb=50):
        """Host-to-host throughput in bit/s and the seconds it took: rsync of size_mb MB of random
        bytes from source to destination over SSH inside their namespaces (as the migration sends)."""
        src = self.hosts[source]
        dst = self.hosts[destination]
        tag = "bench-linkrate-%d" % os.getpid()
        src_dir = Path(src["checkpoint_dir"]) / tag
        dst_dir = Path(dst["checkpoint_dir"]) / tag
        try:
            src_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(src_dir / "blob", "wb") as handle:
                for _ in range(size_mb):
                    handle.write(os.urandom(1 << 20))
            ssh = "ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes" % (
                src["ssh_key"], self.known_hosts)
            argv = [str(LAB), "exec", source, "--", "rsync", "-a", "--whole-file", "--stats", "-e", ssh,
                    str(src_dir) + "/", "root@%s:%s/" % (dst["address"], dst_dir)]
            began = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
            elapsed = time.monotonic() - began
            if proc.returncode != 0:
                raise RuntimeError("link rate measurement failed: %s" % proc.stderr.strip())
            bits = size_mb * (1 << 20) * 8
            return bits / elapsed, elapsed
        finally:
            subprocess.run(["rm", "-rf", str(src_dir), str(dst_dir)], check=False)


def run_playbook(args, log_path, timeout):
    """ansible-playbook `args` from the repository, its output written to log_path as it comes."""
    with open(log_path, "w") as handle:
        return subprocess.run([str(PLAYBOOK), *args], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, check=False)


def find_report(log_path):
    """The migration report a migrate.yml run printed ('report: <path>') in its log, if it exists."""
    for line in reversed(Path(log_path).read_text(errors="replace").splitlines()):
        line = line.strip().strip("'\"- ")
        if line.startswith("report: "):
            path = line[len("report: "):].strip().strip("'\"")
            if os.path.exists(path):
                return path
    return None


def _parent(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def other_playbooks():
    """Pids of ansible-playbook processes that are neither this process's children nor the one that
    started it (playbooks/experiment.yml): someone else's tests."""
    mine = os.getpid()
    ancestors, pid = set(), mine
    while pid > 1 and len(ancestors) < 50:
        try:
            pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            break
        ancestors.add(pid)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in ancestors:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmd = handle.read().split(b"\0")
            if not any(part.endswith(b"ansible-playbook") for part in cmd[:2]):
                continue
            # skip our own children (and their forks)
            ppid, own = int(pid), False
            for _ in range(20):
                ppid = _parent(ppid)
                if ppid == mine:
                    own = True
                    break
                if ppid <= 1:
                    break
            if not own:
                found.append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return found


class Watch(threading.Thread):
    """Notes whether someone else's playbook ran while a run was measured (shared lab)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = set()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.5):
            self.seen.update(other_playbooks())
