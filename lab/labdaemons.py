"""The lab's processes and daemons: the processes that belong to the lab, each host's dockerd
(started, recovered after a crash with what its containerd left, stopped) and CRIU.
Standard library only."""

import json
import os
import re
import shutil
import signal

from labcore import (
    MARKERS,
    PATH_ENV,
    RUN,
    VAR,
    Changes,
    LabError,
    all_pids,
    ancestors,
    cgroup_pids,
    docker_ping,
    ensure_dir,
    kill_pids,
    netns_inode,
    proc_alive,
    remove_cgroups,
    run,
    say,
    spawn_daemon,
    unmount_all,
    wait_for,
    warn,
    write_if_changed,
)
from labhosts import DOCKERD, REGISTRY, discover_host_names


def lab_processes(host_names=None, markers=None, by_netns=True):
    """PIDs that belong to the lab (or to the given hosts): command line naming a lab path
    (or one of markers), living in a lab network namespace, or in a lab container cgroup."""
    names = host_names
    if names is None:
        names = discover_host_names()
    if markers is None:
        markers = MARKERS if host_names is None else \
            ["%s/%s/" % (RUN, n) for n in names] + ["%s/%s/" % (VAR, n) for n in names]
    markers = [m.encode() for m in markers]
    inodes = {netns_inode("/run/netns/edgelab-" + n) for n in names} - {None} if by_netns else set()
    cg_pids = set()
    for n in names:
        cg_pids |= cgroup_pids("edgelab-" + n)
    skip = ancestors()
    found = set()
    for pid in all_pids():
        if pid in skip or not proc_alive(pid):
            continue
        if pid in cg_pids:
            found.add(pid)
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cl = f.read()
        except OSError:
            continue
        if not cl:  # kernel thread
            continue
        if any(m in cl for m in markers):
            found.add(pid)
            continue
        try:
            if os.stat("/proc/%d/ns/net" % pid).st_ino in inodes:
                found.add(pid)
        except OSError:
            pass
    return found


def dockerd_cmd(h):
    return h.ns([DOCKERD, "--experimental",
                 "--data-root", h.data_root,
                 "--exec-root", h.exec_root,
                 "--host", h.docker_host,
                 "--pidfile", h.docker_pid,
                 "--config-file", h.daemon_json,
                 "--cgroup-parent", h.cgroup_parent,
                 "--insecure-registry", REGISTRY])


def recover_host_runtime(h):
    """dockerd of h is dead: clean what it left so a new one starts cleanly."""
    if h.containerd_pid():
        say("  %s: dockerd is not running but its containerd is (pid %d): the new dockerd "
            "reattaches to it and its running containers" % (h.name, h.containerd_pid()))
        return
    notes = []
    procs = lab_processes([h.name], markers=[str(h.run) + "/", str(h.data_root) + "/"],
                          by_netns=False)
    ino = netns_inode(h.nspath)
    for pid in all_pids():  # the dead dockerd's port proxies still hold the published ports
        try:
            if os.stat("/proc/%d/ns/net" % pid).st_ino == ino and \
                    os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "docker-proxy":
                procs.add(pid)
        except OSError:
            pass
    if procs:
        kill_pids(procs, grace=2)
        notes.append("killed %d leftover processes (containerd shims, container processes)"
                     % len(procs))
    n = unmount_all([h.run, h.data_root])
    if n:
        notes.append("unmounted %d stale mounts" % n)
    for stale in (h.docker_pid, h.socket, h.exec_root / "containerd" / "containerd.pid"):
        if stale.exists() or stale.is_symlink():
            stale.unlink()
            notes.append("removed stale %s" % stale)
    remove_cgroups(h.cgroup_parent.lstrip("/"))
    if notes:
        Changes.add("%s: recovered after a dead dockerd: %s" % (h.name, "; ".join(notes)), restart=True)


def ensure_dockerd(h):
    ensure_dir(h.run, 0o700)
    # the trust key (the daemon's ID) per host, not in /etc/docker where all would share it;
    # the settings the edge_docker and edge_runtime roles merge in (the runtime) are kept
    try:
        current = json.loads(h.daemon_json.read_text())
    except (OSError, ValueError):
        current = None
    config = dict(current or {}, **{"deprecated-key-path": str(h.trust_key)})
    config_changed = config != current and write_if_changed(
        h.daemon_json, json.dumps(config, indent=4, sort_keys=True) + "\n", 0o644)
    if config_changed:
        Changes.add("%s: wrote %s" % (h.name, h.daemon_json))
    pid = h.dockerd_pid()
    if pid and config_changed:
        os.kill(pid, signal.SIGHUP)  # dockerd reloads its runtimes on SIGHUP
        Changes.add("%s: dockerd reloaded its configuration" % h.name)
    if pid:
        if docker_ping(h.socket) or wait_for(lambda: docker_ping(h.socket), 30):
            return
        warn("%s: dockerd pid %d does not answer on %s; restarting it" % (h.name, pid, h.socket))
        kill_pids({pid}, grace=10)
    recover_host_runtime(h)
    proc = spawn_daemon(dockerd_cmd(h), h.dockerd_log)
    if not wait_for(lambda: h.dockerd_up() or proc.poll() is not None, 60, 0.2) \
            or not h.dockerd_up():
        raise LabError("%s: dockerd did not come up on %s; see %s" % (h.name, h.socket, h.dockerd_log))
    Changes.add("%s: dockerd started (pid %s, %s)" % (h.name, h.dockerd_pid(), h.docker_host), restart=True)
    ps = h.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.split("\n")
    ps = [p for p in ps if p.strip()]
    if ps:
        say("  %s: containers left from before (dockerd restarts those with a restart policy, "
            "the others stay exited): %s" % (h.name, "; ".join(ps)))


def stop_dockerd(h):
    pid = h.dockerd_pid()
    if not pid:
        return
    if docker_ping(h.socket):
        ids = h.docker("ps", "-q", check=False, timeout=30).stdout.split()
        if ids:
            h.docker("kill", *ids, check=False, timeout=60)
            say("  %s: killed %d containers" % (h.name, len(ids)))
    os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: not proc_alive(pid), 20):
        warn("%s: dockerd %d ignored SIGTERM for 20 s; SIGKILL" % (h.name, pid))
        kill_pids({pid}, grace=0)
    say("  %s: dockerd stopped" % h.name)


def criu_info():
    path = shutil.which("criu", path=PATH_ENV)
    if not path:
        return {"path": None, "version": None}
    ver = run([path, "--version"], check=False).stdout
    m = re.search(r"Version:\s*(\S+)", ver)
    return {"path": path, "real_path": os.path.realpath(path), "version": m.group(1) if m else None}


def check_criu():
    info = criu_info()
    if not info["path"]:
        raise LabError("criu not found; run `make system` (lab/install-system.sh)")
    proc = run([info["path"], "check"], check=False)
    if proc.returncode != 0:
        raise LabError("`criu check` fails with %s (%s): %s\nrun lab/install-criu.sh"
                       % (info["path"], info["version"], (proc.stderr or proc.stdout).strip()))
    say("CRIU: %s -> %s, version %s (criu check: Looks good)"
        % (info["path"], info["real_path"], info["version"]))
