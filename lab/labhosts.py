"""The lab's layout and its hosts: where its files, programs and addresses are, the edge
hosts (Host), the state file, which hosts and system edges the lab has, the lock.
Standard library only."""

import fcntl
import json
import os
import re
from pathlib import Path

import labsystems
from labcore import (
    LOG,
    RUN,
    VAR,
    LabError,
    daemon_env,
    docker_ping,
    ip_links,
    netns_list,
    pid_from_file,
    run,
    tcp_open,
)

REPO = Path(__file__).resolve().parent.parent
LOCK = Path("/run/edgelab.lock")
SSH_DIR = VAR / "ssh"
CONTROLLER_KEY = SSH_DIR / "controller_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
STATE_FILE = VAR / "lab.json"
INVENTORY = REPO / "inventory" / "lab" / "hosts.yml"
SYSTEMS_INVENTORY = REPO / "inventory" / "lab-systems" / "hosts.yml"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
VENV_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
# What makes a host an edge (tools, CRIU check, runtime wrapper, Docker settings, SSH trust
# between the edges) comes from the same playbook as on real hosts; the lab starts the daemons.
PREPARE_PLAYBOOK = REPO / "playbooks" / "prepare_edges.yml"
PREPARED_STAMP = VAR / "prepared.json"
# Marks the block of edge keys that the edge_ssh_trust role keeps in each edge's authorized_keys.
TRUST_BLOCK = re.compile(r"^# BEGIN edge-migrate: .*?^# END edge-migrate: [^\n]*\n?", re.M | re.S)
# Installed on the hosts (they share the machine's /usr/local and /etc) by the edge_runtime
# role: the OCI runtime wrapper and CRIU's options for runc; `down` removes them.
RUNTIME_PATH = Path("/usr/local/libexec/edge-migrate-runtime")
CRIU_RUNC_CONF_SOURCE = REPO / "roles" / "edge_runtime" / "templates" / "runc.conf.j2"
CRIU_RUNC_CONF = Path("/etc/criu/runc.conf")

BRIDGE = "edgelab0"
SUBNET = "10.77.0"
GATEWAY = SUBNET + ".1"
REGISTRY = GATEWAY + ":5000"
REGISTRY_DIR = VAR / "registry"
REGISTRY_CONFIG = VAR / "registry.yml"
REGISTRY_PID = RUN / "registry.pid"
MAX_HOSTS = 4
DEFAULT_HOSTS = 3
DOCKER = "/usr/bin/docker"  # Debian's client, same release as the daemon (20.10)
DOCKERD = "/usr/sbin/dockerd"
SSHD = "/usr/sbin/sshd"
DOCKER_REGISTRY = "/usr/bin/docker-registry"

REQUIRED_TOOLS = ["ip", "tc", "nsenter", "mount", "umount", DOCKERD, "containerd", "runc",
                  DOCKER, SSHD, "ssh", "ssh-keygen", DOCKER_REGISTRY, "debootstrap", "busybox",
                  "criu", "rsync", "xdelta3", "tar"]


class Host:
    def __init__(self, n):
        self.n = n
        self.name = "edge%d" % n
        self.address = "%s.%d" % (SUBNET, 10 + n)
        self.netns = "edgelab-" + self.name
        self.nspath = "/run/netns/" + self.netns
        self.veth = "el-" + self.name
        self.var = VAR / self.name
        self.run = RUN / self.name
        self.data_root = self.var / "docker"
        self.workdir = self.var / "work"
        self.sshdir = self.var / "ssh"
        self.host_key = self.sshdir / "ssh_host_ed25519_key"
        self.id_key = self.sshdir / "id_ed25519"  # made by the edge_ssh_trust role
        self.known_hosts = self.sshdir / "known_hosts"  # the other edges' host keys (edge_ssh_trust)
        # its own: edge_ssh_trust writes each edge's block with that edge's forced command
        self.authorized_keys = self.sshdir / "authorized_keys"
        self.sshd_config = self.var / "sshd_config"
        self.daemon_json = self.var / "daemon.json"
        self.trust_key = self.var / "key.json"
        self.socket = self.run / "docker.sock"
        self.docker_host = "unix://%s" % self.socket
        self.docker_pid = self.run / "docker.pid"
        self.exec_root = self.run / "exec"
        self.sshd_pid = self.run / "sshd.pid"
        self.cgroup_parent = "/edgelab-" + self.name
        self.dockerd_log = LOG / (self.name + "-dockerd.log")
        self.sshd_log = LOG / (self.name + "-sshd.log")

    def ns(self, cmd):
        return ["nsenter", "--net=" + self.nspath] + list(cmd)

    def docker(self, *args, check=True, timeout=120, capture=True, stdin=None):
        return run([DOCKER, "-H", self.docker_host] + list(args), check=check, timeout=timeout,
                   capture=capture, env=daemon_env(), stdin=stdin)

    def dockerd_pid(self):
        return pid_from_file(self.docker_pid, str(self.socket))

    def dockerd_up(self):
        return bool(self.dockerd_pid()) and docker_ping(self.socket)

    def sshd_pid_alive(self):
        return pid_from_file(self.sshd_pid, str(self.sshd_config))

    def sshd_up(self):
        return bool(self.sshd_pid_alive()) and tcp_open(self.address, 22)

    def containerd_pid(self):
        return pid_from_file(self.exec_root / "containerd" / "containerd.pid", str(self.exec_root))


def load_state():
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def discover_host_names():
    names = set()
    state = load_state()
    for i in range(1, int(state.get("hosts", 0)) + 1):
        names.add("edge%d" % i)
    if Path("/run/netns").is_dir():
        names |= {n[len("edgelab-"):] for n in os.listdir("/run/netns")
                  if re.fullmatch(r"edgelab-edge\d+", n)}
    for d in (RUN, VAR):
        if d.is_dir():
            names |= {n for n in os.listdir(d) if re.fullmatch(r"edge\d+", n)}
    for link in ip_links():
        m = re.fullmatch(r"el-(edge\d+)", link)
        if m:
            names.add(m.group(1))
    return sorted(names, key=lambda n: int(n[4:]))


def host_by_name(name):
    m = re.fullmatch(r"edge(\d+)", name)
    if not m or not 1 <= int(m.group(1)) <= MAX_HOSTS:
        raise LabError("unknown host %r (hosts are edge1..edge%d)" % (name, MAX_HOSTS))
    return Host(int(m.group(1)))


def systems_of(releases):
    return [labsystems.SystemEdge(i, r, SUBNET) for i, r in enumerate(releases, 1)]


def system_by_name(name):
    """A system edge of the lab (sysN), or None when name is not one."""
    if not re.fullmatch(r"sys\d+", name):
        return None
    found = [h for h in systems_of(load_state().get("releases", [])) if h.name == name]
    if not found:
        raise LabError("unknown host %r: the lab's system edges are %s" % (
            name, ", ".join(h.name for h in systems_of(load_state().get("releases", []))) or "none"))
    return found[0]


def discover_systems():
    """The system edges the lab made (its state, and any sysN directory or namespace left)."""
    releases = list(load_state().get("releases", []))
    found = set()
    for d in (VAR, labsystems.MNTNS_DIR):
        if d.is_dir():
            found |= {int(n[3:]) for n in os.listdir(d) if re.fullmatch(r"sys\d+", n)}
    found |= {int(n[len("edgelab-sys"):]) for n in netns_list() if re.fullmatch(r"edgelab-sys\d+", n)}
    for i in sorted(found):
        if i > len(releases):
            releases += ["bookworm"] * (i - len(releases))  # only to take it down
    return systems_of(releases)


def releases_wanted(arg):
    """The system edges' releases: --releases, else $LAB_RELEASES, else the current lab's."""
    if arg is not None:
        return labsystems.parse_releases(arg)
    if "LAB_RELEASES" in os.environ:
        return labsystems.parse_releases(os.environ["LAB_RELEASES"])
    return labsystems.parse_releases(",".join(load_state().get("releases", [])))


def hosts_wanted(arg):
    if arg is not None:
        n = arg
    elif os.environ.get("LAB_HOSTS"):
        try:
            n = int(os.environ["LAB_HOSTS"])
        except ValueError as exc:
            raise LabError("LAB_HOSTS must be a number, not %r" % os.environ["LAB_HOSTS"]) from exc
    else:
        n = int(load_state().get("hosts", DEFAULT_HOSTS))
    if not 1 <= n <= MAX_HOSTS:
        raise LabError("the lab has 1 to %d hosts, not %d" % (MAX_HOSTS, n))
    return n


def lock():
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def require_root():
    if os.geteuid() != 0:
        raise LabError("the lab needs root")
