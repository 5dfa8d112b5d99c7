"""`lab/lab up` and `lab/lab images`: brings the lab up (network, registry, SSH, daemons,
system edges, images, inventory, the edges' preparation), or adds the missing images alone.
Standard library only."""

import json
import shutil
import time
from pathlib import Path

import labsystems
from labcore import (
    LOG,
    PATH_ENV,
    RUN,
    VAR,
    Changes,
    LabError,
    ensure_dir,
    root_is_shared,
    run,
    say,
    warn,
    write_if_changed,
)
from labdaemons import check_criu, ensure_dockerd
from labdown import down_host, down_system
from labhosts import (
    CONTROLLER_KEY,
    GATEWAY,
    INVENTORY,
    KNOWN_HOSTS,
    REGISTRY,
    REPO,
    REQUIRED_TOOLS,
    STATE_FILE,
    SYSTEMS_INVENTORY,
    TRUST_BLOCK,
    Host,
    discover_host_names,
    discover_systems,
    host_by_name,
    hosts_wanted,
    lock,
    releases_wanted,
    require_root,
    systems_of,
)
from labimages import apt_mirror, ensure_images, ensure_registry, registry_up, seed_registry
from labinventory import ensure_inventory, prepare_edges, yaml_str
from labnet import ensure_bridge, ensure_host_network
from labssh import ensure_ssh, ensure_sshd, pubkey, system_keys


def ensure_systems(systems, all_hosts):
    """The system edges: network, a bare system of their release, their mount namespace,
    sshd (and Docker once prepared) as their boot would start them."""
    for h in discover_systems():
        wanted = systems[h.n - 1].release if h.n <= len(systems) else None
        try:
            has = json.loads(h.stamp.read_text()).get("release")
        except (OSError, ValueError):
            has = None
        if wanted is None or has not in (None, wanted):
            say("removing %s (%s)" % (h.name, "no longer wanted" if wanted is None else "it runs %s" % has))
            down_system(h)
            Changes.add("removed %s" % h.name)
    if not systems:
        if SYSTEMS_INVENTORY.exists():
            SYSTEMS_INVENTORY.unlink()
            Changes.add("removed %s" % SYSTEMS_INVENTORY.relative_to(REPO))
        labsystems.stop_apt_proxy()
        return
    labsystems.ensure_apt_proxy(GATEWAY)
    mirror = apt_mirror()
    labsystems.build_rootfs_tarballs({h.release for h in systems}, mirror)
    for h in systems:
        ensure_host_network(h)
        labsystems.ensure_root(h, mirror)
        labsystems.ensure_files(h, GATEWAY, pubkey(CONTROLLER_KEY), TRUST_BLOCK)
        labsystems.ensure_mount_namespace(h)
        labsystems.boot_services(h)
    ensure_dir(SYSTEMS_INVENTORY.parent, 0o755)
    text = labsystems.inventory_text(systems, REGISTRY, CONTROLLER_KEY, KNOWN_HOSTS, yaml_str)
    if write_if_changed(SYSTEMS_INVENTORY, text, 0o644):
        Changes.add("wrote inventory %s" % SYSTEMS_INVENTORY.relative_to(REPO))


def cmd_up(args):
    require_root()
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t, path=PATH_ENV)]
    if missing:
        raise LabError("missing tools: %s; run `make system` (lab/install-system.sh)"
                       % ", ".join(missing))
    n = hosts_wanted(args.hosts)
    releases = releases_wanted(args.releases)
    systems = systems_of(releases)
    t0 = time.time()
    lock()
    hosts = [Host(i) for i in range(1, n + 1)]
    say("edge lab: %d hosts (%s)" % (n, ", ".join(h.name for h in hosts)))
    check_criu()
    extra = [host_by_name(name) for name in discover_host_names() if int(name[4:]) > n]
    for h in extra:
        say("removing %s (the lab now has %d hosts)" % (h.name, n))
        down_host(h)
        Changes.add("removed %s" % h.name)
    if not root_is_shared():
        run(["mount", "--make-rshared", "/"])
        Changes.add("made / rshared (CRIU restores need shared mount propagation)")
    for d, mode in ((VAR, 0o755), (RUN, 0o755), (LOG, 0o755)):
        ensure_dir(d, mode)
    if write_if_changed(STATE_FILE, json.dumps({"hosts": n, "releases": releases}) + "\n"):
        Changes.add("recorded %d hosts%s in %s" % (n, "".join(", a %s system edge" % r for r in releases), STATE_FILE))
    containerd_sock = Path("/run/containerd/containerd.sock")
    if containerd_sock.exists():
        warn("%s exists: dockerd 20.10 uses a system containerd if its socket exists, so the "
             "lab's daemons would share it; stop that containerd" % containerd_sock)
    ensure_bridge()
    for h in hosts:
        ensure_host_network(h)
    seed_registry()
    ensure_registry()
    system_keys(systems)
    ensure_ssh(hosts, hosts + systems)
    for h in hosts:
        ensure_sshd(h)
    for h in hosts:
        ensure_dockerd(h)
    ensure_systems(systems, hosts + systems)
    ensure_images(hosts[0])
    ensure_inventory(hosts)
    prepare_edges()
    dt = time.time() - t0
    systems_note = "".join(", %s (%s)" % (h.name, h.release) for h in systems)
    if Changes.items:
        say("edge lab is up: %d hosts%s, registry %s, inventory %s (%d changes, %.1f s)"
            % (n, systems_note, REGISTRY, INVENTORY.relative_to(REPO), len(Changes.items), dt))
    else:
        say("edge lab is up: nothing to change (%d hosts%s, registry %s, %.1f s)" % (n, systems_note, REGISTRY, dt))
    return 0


def cmd_images(args):
    """ensure_images alone, on a lab that is up: adds images without touching its daemons."""
    require_root()
    lock()
    builder = Host(1)
    if not registry_up() or not builder.dockerd_up():
        raise LabError("the lab is not up (registry %s, %s's dockerd): run `lab/lab up`" % (REGISTRY, builder.name))
    t0 = time.time()
    ensure_images(builder)
    say("lab images: %s (%.1f s)" % ("%d changes" % len(Changes.items) if Changes.items else "nothing to change",
                                    time.time() - t0))
    return 0
