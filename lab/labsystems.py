"""System edges: lab edges that are each their own Debian system, as a real edge host is.

A system edge has its own root file system (a debootstrap of its release, cached as a
tarball), its own mount namespace (pivot_root into that root) and its own network namespace.
The lab starts only what a freshly installed machine runs (sshd, and the services the
machine has installed, as its boot would); Docker, CRIU and the tools come only from
playbooks/prepare_edges.yml over SSH, which installs them with apt inside the edge, through
an apt proxy on the lab's bridge (apt-cacher-ng, so packages are downloaded once).

Seen from the controller, an edge's files are under VAR/<name>/root: its Docker socket,
data root and migration directory are reached there (tests do), while the edge itself sees
/var/run/docker.sock, /var/lib/docker and /var/lib/edge-migrate.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import time
from pathlib import Path

from labcore import (
    CACHE,
    LOG,
    RUN,
    VAR,
    Changes,
    LabError,
    all_pids,
    daemon_env,
    docker_ping,
    ensure_dir,
    is_mount_point,
    kill_pids,
    proc_alive,
    read_pid,
    run,
    safe_rmtree,
    say,
    spawn_daemon,
    tcp_open,
    wait_for,
    write_if_changed,
)

# Debian releases an edge can run, with the Docker Engine their docker.io package brings.
RELEASES = {"bookworm": "20.10", "trixie": "26.1", "sid": "28.5"}
SYSTEM_PACKAGES = "openssh-server,python3,iproute2,procps"
SYSTEM_RECIPE = 1  # bump to rebuild every cached system root file system
MNTNS_DIR = RUN / "mntns"
APT_PROXY_PORT = 3142
APT_PROXY_CACHE = CACHE / "apt-proxy"
APT_PROXY_PID = RUN / "apt-proxy.pid"
APT_PROXY_CONF = VAR / "apt-proxy"
SYSTEM_ADDRESS_BASE = 30  # sysN has SUBNET.(30 + N)
EDGE_DOCKER_SOCKET = "/var/run/docker.sock"
EDGE_WORKDIR = "/var/lib/edge-migrate"


def parse_releases(text):
    releases = [r.strip() for r in (text or "").split(",") if r.strip()]
    unknown = [r for r in releases if r not in RELEASES]
    if unknown:
        raise LabError("unknown release %s: a system edge runs one of %s"
                       % (", ".join(unknown), ", ".join(sorted(RELEASES))))
    return releases


class SystemEdge:
    def __init__(self, n, release, subnet):
        self.n = n
        self.release = release
        self.name = "sys%d" % n
        self.address = "%s.%d" % (subnet, SYSTEM_ADDRESS_BASE + n)
        self.netns = "edgelab-" + self.name
        self.nspath = "/run/netns/" + self.netns
        self.veth = "el-" + self.name
        self.var = VAR / self.name
        self.run = RUN / self.name
        self.root = self.var / "root"
        self.stamp = self.var / "release.json"
        self.mntns = MNTNS_DIR / self.name
        self.sshdir = self.var / "ssh"  # the lab's copy of the host key (the controller pins it)
        self.host_key = self.sshdir / "ssh_host_ed25519_key"
        self.authorized_keys = self.root / "root" / ".ssh" / "authorized_keys"
        self.workdir = self.root / EDGE_WORKDIR.lstrip("/")
        self.data_root = self.root / "var" / "lib" / "docker"
        self.socket = self.root / "run" / "docker.sock"  # /var/run is a link to /run inside
        self.controller_docker_host = "unix://%s" % self.socket
        self.cgroup_parent = "/edgelab-" + self.name
        self.sshd_pidfile = self.root / "run" / "sshd.pid"
        self.boot_log = LOG / (self.name + "-boot.log")

    def inside(self, cmd):
        """cmd run inside the edge: its network and mount namespaces (root = its root)."""
        return ["nsenter", "--net=" + self.nspath, "--mount=" + str(self.mntns), "--"] + [str(c) for c in cmd]

    def booted(self):
        return os.path.ismount(self.mntns)

    def sshd_pid(self):
        pid = read_pid(self.sshd_pidfile)
        return pid if pid and proc_alive(pid) and self.runs_inside(pid) else None

    def runs_inside(self, pid):
        try:
            return os.stat("/proc/%d/ns/mnt" % pid).st_ino == os.stat(self.mntns).st_ino
        except OSError:
            return False

    def processes(self):
        """Every process of this edge: in its mount namespace, or in its containers' cgroups."""
        try:
            ino = os.stat(self.mntns).st_ino if self.booted() else None
        except OSError:
            ino = None
        found = set()
        for pid in all_pids():
            try:
                if ino is not None and os.stat("/proc/%d/ns/mnt" % pid).st_ino == ino:
                    found.add(pid)
                    continue
                with open("/proc/%d/cgroup" % pid) as f:
                    if ":%s/" % self.cgroup_parent in f.read():
                        found.add(pid)
            except OSError:
                pass
        return found


def system_rootfs(release, mirror):
    """The release's minimal system (minbase, sshd, python3) as a tarball in the cache."""
    tar = CACHE / ("system-%s.tar" % release)
    meta = CACHE / ("system-%s.json" % release)
    want = {"release": release, "packages": SYSTEM_PACKAGES, "recipe": SYSTEM_RECIPE}
    try:
        if json.loads(meta.read_text()).get("recipe") == want and tar.exists():
            return tar
    except (OSError, ValueError):
        pass
    ensure_dir(CACHE)
    ensure_dir(LOG)
    build = CACHE / ("system-%s.tmp" % release)
    safe_rmtree(build)
    log = LOG / ("debootstrap-system-%s.log" % release)
    say("  building the %s system: debootstrap --variant=minbase --include=%s from %s "
        "(about a minute, cached in %s)" % (release, SYSTEM_PACKAGES, mirror, CACHE))
    t0 = time.time()
    try:
        with open(log, "w") as out:
            proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + SYSTEM_PACKAGES,
                                   release, str(build), mirror], stdout=out, stderr=out,
                                  env=daemon_env(), timeout=1200)
        if proc.returncode != 0:
            raise LabError("debootstrap of %s failed (rc=%d); see %s" % (release, proc.returncode, log))
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for child in (build / rel).glob("*"):
                if child.is_file():
                    child.unlink()
        # a real machine gets its own host keys; the lab writes the one the controller pins
        for key in (build / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()
        tmp = tar.with_suffix(".tar.tmp")
        run(["tar", "-C", build, "--numeric-owner", "--xattrs", "-cf", tmp, "."], timeout=600)
        os.replace(tmp, tar)
    finally:
        safe_rmtree(build)
    write_if_changed(meta, json.dumps({"recipe": want}) + "\n")
    Changes.add("built %s (%d MB) in %.0f s" % (tar, tar.stat().st_size >> 20, time.time() - t0), prepare=False)
    return tar


def build_rootfs_tarballs(releases, mirror):
    """The releases' system tarballs, the missing ones built side by side (debootstrap mostly
    waits on downloads)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(releases))) as pool:
        for future in [pool.submit(system_rootfs, release, mirror) for release in sorted(releases)]:
            future.result()


def ensure_root(h, mirror):
    """h's root file system, unpacked once from its release's tarball (kept across `up`s:
    what prepare_edges.yml installed stays, as on a machine's disk)."""
    try:
        if json.loads(h.stamp.read_text()).get("release") == h.release and h.root.is_dir():
            return
    except (OSError, ValueError):
        pass
    if h.booted():
        raise LabError("%s runs another release than %s: `lab/lab down` first" % (h.name, h.release))
    tar = system_rootfs(h.release, mirror)
    safe_rmtree(h.root)
    ensure_dir(h.root, 0o755)
    run(["tar", "-C", h.root, "--numeric-owner", "--xattrs", "-xf", tar], timeout=600)
    write_if_changed(h.stamp, json.dumps({"release": h.release}) + "\n")
    Changes.add("%s: unpacked a bare %s system into %s" % (h.name, h.release, h.root))


def ensure_files(h, gateway, pubkey_text, trust_block):
    """What the machine's installer would have set: hostname, host key, root's authorized
    key (the controller's; the edge_ssh_trust role's block kept), the apt proxy, sshd's
    address. Nothing of Docker, CRIU or the migration."""
    etc = h.root / "etc"
    changed = []
    wanted = {
        etc / "hostname": (h.name + "\n", 0o644),
        etc / "hosts": ("127.0.0.1 localhost\n%s %s\n" % (h.address, h.name), 0o644),
        # The lab machines' mirror may be a snapshot older than sid's Release lets apt use
        # (Valid-Until, a week): apt would refuse every sid package.
        etc / "apt" / "apt.conf.d" / "01edgelab-proxy":
            ('Acquire::http::Proxy "http://%s:%d";\nAcquire::Check-Valid-Until "false";\n'
             % (gateway, APT_PROXY_PORT), 0o644),
        # Debian's init script raises the open files limit to 1048576; the lab machines' root
        # lacks CAP_SYS_RESOURCE and cannot raise a hard limit, so `ulimit` there keeps the
        # limits it has (a real host has the capability, or systemd).
        etc / "default" / "docker": (
            "# Written by lab/lab: this machine's root cannot raise hard limits (no CAP_SYS_RESOURCE).\n"
            'ulimit() { command ulimit "$@" 2>/dev/null || true; }\n', 0o644),
        # The edge's /sys/fs/cgroup is the machine's. Debian's docker init script mounts every
        # cgroup v1 controller it finds unmounted there unless fstab names cgroups, and a
        # controller mounted anywhere is active for every process on the machine: containerd 1.6
        # on the other edges then finds no mount for it and reports no container metrics.
        etc / "fstab": ("# Written by lab/lab: cgroups come from the lab machine.\n"
                        "none /sys/fs/cgroup none bind 0 0\n", 0o644),
        etc / "ssh" / "sshd_config.d" / "edgelab.conf": ("\n".join([
            "# Written by lab/lab for %s" % h.name,
            "ListenAddress %s" % h.address,
            "HostKey /etc/ssh/ssh_host_ed25519_key",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UseDNS no",
            "MaxStartups 100:30:200",
            "MaxSessions 100", ""]), 0o644),
        etc / "ssh" / "ssh_host_ed25519_key": (h.host_key.read_bytes(), 0o600),
        etc / "ssh" / "ssh_host_ed25519_key.pub": (Path(str(h.host_key) + ".pub").read_bytes(), 0o644),
    }
    for path, (content, mode) in wanted.items():
        ensure_dir(path.parent, 0o755)
        if write_if_changed(path, content, mode):
            changed.append(path.name)
    ensure_dir(h.authorized_keys.parent, 0o700)
    try:
        trust = trust_block.findall(h.authorized_keys.read_text())
    except OSError:
        trust = []
    if write_if_changed(h.authorized_keys, pubkey_text + "\n" + "".join(trust), 0o600):
        changed.append("authorized_keys")
    ensure_dir(h.root / "run" / "sshd", 0o755)
    if changed:
        Changes.add("%s: wrote %s" % (h.name, ", ".join(changed)))


BOOT_SCRIPT = r"""
set -e
root="$1"
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mkdir -p "$root/.oldroot"
cd "$root"
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
mount --make-rshared /
"""


def ensure_mount_namespace(h):
    """The edge's own mount namespace whose root is h.root, kept by a bind mount of its
    nsfs file under MNTNS_DIR (as `ip netns` keeps network namespaces)."""
    if h.booted():
        return False
    ensure_dir(MNTNS_DIR, 0o755)
    if not is_mount_point(MNTNS_DIR):
        run(["mount", "--bind", MNTNS_DIR, MNTNS_DIR])
        run(["mount", "--make-private", MNTNS_DIR])
    h.mntns.touch()
    run(["nsenter", "--net=" + h.nspath, "unshare", "--mount=%s" % h.mntns, "--propagation", "private",
         "sh", "-c", BOOT_SCRIPT, "boot", h.root])
    Changes.add("%s: mount namespace with %s as its root (%s)" % (h.name, h.root, h.mntns), restart=True)
    return True


def boot_services(h):
    """What the machine starts at boot: sshd, and Docker once prepare_edges.yml installed it."""
    ensure_dir(LOG)
    if not h.sshd_pid():
        run(h.inside(["/usr/sbin/sshd", "-t"]))
        proc = spawn_daemon(h.inside(["/usr/sbin/sshd", "-E", "/var/log/sshd.log"]), h.boot_log)
        proc.wait(timeout=30)
        if not wait_for(h.sshd_pid, 15):
            raise LabError("%s: sshd did not start; see %s and %s/var/log/sshd.log" % (h.name, h.boot_log, h.root))
        Changes.add("%s: sshd started on %s:22 (pid %s)" % (h.name, h.address, h.sshd_pid()), restart=True)
    if (h.root / "etc" / "init.d" / "docker").exists() and not docker_ping(h.socket):
        with open(h.boot_log, "a") as out:
            subprocess.run(h.inside(["/etc/init.d/docker", "start"]), stdout=out, stderr=out,
                           stdin=subprocess.DEVNULL, env=daemon_env(), timeout=120)
        if not wait_for(lambda: docker_ping(h.socket), 60, 0.3):
            raise LabError("%s: Docker did not start; see %s and %s/var/log/docker.log" % (h.name, h.boot_log, h.root))
        Changes.add("%s: Docker started (its init script, as at boot)" % h.name, restart=True)


def ensure_apt_proxy(gateway):
    """apt-cacher-ng on the bridge: the edges' apt goes through it, each package is
    downloaded once per machine."""
    pid = read_pid(APT_PROXY_PID)
    if pid and proc_alive(pid, "apt-cacher-ng"):
        return
    for d in (APT_PROXY_CACHE, LOG / "apt-proxy", APT_PROXY_CONF):
        ensure_dir(d, 0o755)
    # Debian's configuration remaps the Debian mirrors to a backend list that is empty until
    # configured (requests then fail with 503 "Host not found"): this one forwards as asked.
    write_if_changed(APT_PROXY_CONF / "acng.conf", "\n".join([
        "CacheDir: %s" % APT_PROXY_CACHE, "LogDir: %s" % (LOG / "apt-proxy"),
        "SupportDir: /usr/lib/apt-cacher-ng", "Port: %d" % APT_PROXY_PORT, "BindAddress: %s" % gateway,
        "PidFile: ", "SocketPath: %s" % (RUN / "apt-proxy.socket"), "ExThreshold: 4", ""]))
    run(["chown", "-R", "apt-cacher-ng:apt-cacher-ng", APT_PROXY_CACHE, LOG / "apt-proxy"], check=False)
    proc = spawn_daemon(["/usr/sbin/apt-cacher-ng", "-c", APT_PROXY_CONF, "ForeGround=1"], LOG / "apt-proxy.log")
    APT_PROXY_PID.write_text("%d\n" % proc.pid)

    if not wait_for(lambda: tcp_open(gateway, APT_PROXY_PORT), 15):
        raise LabError("apt-cacher-ng did not come up on %s:%d; see %s"
                       % (gateway, APT_PROXY_PORT, LOG / "apt-proxy.log"))
    Changes.add("apt proxy started on %s:%d (cache %s)" % (gateway, APT_PROXY_PORT, APT_PROXY_CACHE), restart=True)


def stop_apt_proxy():
    pid = read_pid(APT_PROXY_PID)
    if pid and proc_alive(pid, "apt-cacher-ng"):
        kill_pids({pid})
        say("  apt proxy stopped")
    for path in (APT_PROXY_PID, RUN / "apt-proxy.socket"):
        if path.exists() or path.is_symlink():
            path.unlink()


def take_down(h):
    """Stops everything the edge runs, leaves its namespaces; the root is removed by the caller."""
    procs = h.processes()
    if procs:
        say("  %s: stopping %d processes" % (h.name, len(procs)))
        kill_pids(procs)
    if h.booted():
        run(["umount", "-l", h.mntns], check=False)
    if h.mntns.exists():
        h.mntns.unlink()


def system_versions(h):
    """The release and the versions of what prepare_edges.yml installed (None until then)."""
    out = {"release": h.release, "debian_version": None, "engine": None, "containerd": None,
           "runc": None, "criu": None}
    try:
        out["debian_version"] = (h.root / "etc" / "debian_version").read_text().strip()
    except OSError:
        pass
    if not h.booted():
        return out
    if docker_ping(h.socket):
        proc = run(h.inside(["docker", "version", "--format", "{{json .}}"]), check=False, timeout=20)
        try:
            version = json.loads(proc.stdout)
            out["engine"] = version["Server"]["Version"]
            for comp in version["Server"].get("Components") or []:
                if comp.get("Name") in ("containerd", "runc"):
                    out[comp["Name"]] = comp.get("Version")
        except (ValueError, KeyError, TypeError):
            pass
    proc = run(h.inside(["sh", "-c", "command -v criu >/dev/null && criu --version"]), check=False, timeout=20)
    m = re.search(r"Version: *(\S+)", proc.stdout or "")
    out["criu"] = m.group(1) if m else None
    return out


def inventory_text(systems, registry, controller_key, known_hosts, yaml_str):
    lines = ["# Written by `lab/lab up` for the lab's system edges; regenerated on every run, do not edit.",
             "# Use it with the lab's inventory: -i inventory/lab -i inventory/lab-systems",
             "all:",
             "  children:",
             "    edges:",
             "      hosts:"]
    for h in systems:
        hv = [
            ("ansible_host", h.address),
            ("ansible_user", "root"),
            ("ansible_ssh_private_key_file", controller_key),
            ("ansible_ssh_common_args", "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % known_hosts),
            ("ansible_python_interpreter", "/usr/bin/python3"),
            ("migration_address", h.address),
            ("lab_release", h.release),
            ("lab_registry", registry),
            ("edge_docker_rshared_persistence", "none"),  # the lab's boot makes / rshared
            # Docker is the edge's own service (the lab's `edges` group vars say otherwise for edge1..N)
            ("edge_docker_service", "docker"),
        ]
        lines.append("        %s:" % h.name)
        lines += ["          %s: %s" % (k, yaml_str(v)) for k, v in hv]
        lines.append("          edge_docker_daemon_settings: %s" % json.dumps(
            {"cgroup-parent": h.cgroup_parent, "insecure-registries": [registry]}))
        lines.append("          access_points: [%s]" % yaml_str("ap-" + h.name))
    return "\n".join(lines) + "\n"
