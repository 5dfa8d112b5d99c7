"""`lab/lab down`: takes the hosts, the system edges, the registry and the network down,
removes what the lab wrote, and says what remains. Standard library only."""

import os
from pathlib import Path

import labsystems
from labcore import (
    CACHE,
    LOG,
    MARKERS,
    RUN,
    VAR,
    all_pids,
    ancestors,
    cmdline,
    ip_links,
    kill_pids,
    link_info,
    mounts_under,
    netns_list,
    pid_from_file,
    remove_cgroups,
    run,
    safe_rmtree,
    say,
    unmount_all,
)
from labdaemons import lab_processes, stop_dockerd
from labhosts import (
    BRIDGE,
    CRIU_RUNC_CONF,
    CRIU_RUNC_CONF_SOURCE,
    INVENTORY,
    LOCK,
    REGISTRY_CONFIG,
    REGISTRY_PID,
    REPO,
    RUNTIME_PATH,
    SYSTEMS_INVENTORY,
    discover_host_names,
    discover_systems,
    host_by_name,
    lock,
    require_root,
)


def down_system(h):
    labsystems.take_down(h)
    if h.netns in netns_list() or Path(h.nspath).exists():
        run(["ip", "netns", "del", h.netns], check=False)
        say("  %s: deleted network namespace %s" % (h.name, h.netns))
    if link_info(h.veth) is not None:
        run(["ip", "link", "del", h.veth], check=False)
    remove_cgroups(h.cgroup_parent.lstrip("/"))
    if safe_rmtree(h.var):
        say("  %s: removed %s" % (h.name, h.var))


def down_host(h):
    stop_dockerd(h)
    pid = h.sshd_pid_alive()
    if pid:
        kill_pids({pid})
        say("  %s: sshd stopped" % h.name)
    procs = lab_processes([h.name])
    if procs:
        say("  %s: stopping %d remaining processes: %s" % (
            h.name, len(procs), "; ".join(sorted({cmdline(p)[:60] for p in procs}))))
        kill_pids(procs)
    remove_cgroups(h.cgroup_parent.lstrip("/"))
    n = unmount_all([h.run, h.var])
    if n:
        say("  %s: unmounted %d mounts" % (h.name, n))
    if h.netns in netns_list() or Path(h.nspath).exists():
        run(["ip", "netns", "del", h.netns], check=False)
        say("  %s: deleted network namespace %s" % (h.name, h.netns))
    if link_info(h.veth) is not None:
        run(["ip", "link", "del", h.veth], check=False)
    for d in (h.run, h.var):
        safe_rmtree(d)


def _first_line(path):
    """The edge_runtime role writes CRIU's options for runc from a template whose first line
    is its own: a file that begins with it is the role's, whatever the rest says."""
    with open(path) as handle:
        return handle.readline()


def cmd_down(args):
    require_root()
    lockfd = lock()
    names = discover_host_names()
    say("edge lab: taking down %s" % (", ".join(names) or "(no hosts found)"))
    for name in names:
        down_host(host_by_name(name))
    for h in discover_systems():
        down_system(h)
    labsystems.stop_apt_proxy()
    pid = pid_from_file(REGISTRY_PID, str(REGISTRY_CONFIG))
    if pid:
        kill_pids({pid})
        say("  registry stopped")
    procs = lab_processes()
    if procs:
        say("  stopping %d remaining lab processes" % len(procs))
        kill_pids(procs)
    for cg in ("edgelab-" + n for n in names):
        remove_cgroups(cg)
    n = unmount_all([VAR, RUN] + ["/run/netns/" + ns for ns in netns_list() if ns.startswith("edgelab-")])
    if n:
        say("  unmounted %d mounts" % n)
    for ns in netns_list():
        if ns.startswith("edgelab-"):
            run(["ip", "netns", "del", ns], check=False)
    for link in ip_links():
        if link.startswith(("el-edge", "el-sys")):
            run(["ip", "link", "del", link], check=False)
    if link_info(BRIDGE) is not None:
        run(["ip", "link", "del", BRIDGE])
        say("  deleted bridge %s" % BRIDGE)
    for d in (VAR, RUN):
        if safe_rmtree(d):
            say("  removed %s" % d)
    for inventory in (INVENTORY, SYSTEMS_INVENTORY):
        if inventory.exists():
            inventory.unlink()
            say("  removed %s" % inventory.relative_to(REPO))
    if RUNTIME_PATH.exists():
        RUNTIME_PATH.unlink()
        say("  removed %s" % RUNTIME_PATH)
    if CRIU_RUNC_CONF.exists() and _first_line(CRIU_RUNC_CONF) == _first_line(CRIU_RUNC_CONF_SOURCE):
        CRIU_RUNC_CONF.unlink()
        say("  removed %s" % CRIU_RUNC_CONF)
    if args.purge:
        for d in (CACHE, LOG):
            if safe_rmtree(d):
                say("  removed %s" % d)
    LOCK.unlink(missing_ok=True)
    os.close(lockfd)
    left = leftovers()
    if left:
        say("edge lab is down, but these remain: %s" % "; ".join(left))
        return 1
    say("edge lab is down: no namespace, daemon, mount or bridge left")
    return 0


def leftovers():
    left = []
    ns = [n for n in netns_list() if n.startswith("edgelab-")]
    if ns:
        left.append("namespaces " + ", ".join(ns))
    if link_info(BRIDGE) is not None:
        left.append("bridge " + BRIDGE)
    m = mounts_under([VAR, RUN, "/run/netns/edgelab-"])
    if m:
        left.append("mounts " + ", ".join(m))
    p = lab_processes([])
    p |= {pid for pid in all_pids() if any(mk.encode() in cmdline(pid).encode() for mk in MARKERS)}
    p -= ancestors()
    if p:
        left.append("processes " + ", ".join("%d (%s)" % (x, cmdline(x)[:50]) for x in sorted(p)))
    for d in (VAR, RUN):
        if d.exists():
            left.append(str(d))
    return left
