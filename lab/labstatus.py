"""`lab/lab status`: what runs in the lab and whether it is fully up, as a table or JSON
(bench/labclient.py and the lab tests read the JSON). Only reads. Standard library only."""

import json

import labsystems
from labcore import docker_ping, link_info, netns_list, pid_from_file, say
from labdaemons import criu_info
from labhosts import (
    BRIDGE,
    CONTROLLER_KEY,
    GATEWAY,
    INVENTORY,
    KNOWN_HOSTS,
    REGISTRY,
    REGISTRY_CONFIG,
    REGISTRY_DIR,
    REGISTRY_PID,
    SYSTEMS_INVENTORY,
    discover_host_names,
    host_by_name,
    load_state,
    systems_of,
)
from labimages import IMAGES, registry_tags, registry_up
from labnet import tc_summary


def collect_status():
    state = load_state()
    n = int(state.get("hosts", 0))
    names = discover_host_names() or ["edge%d" % i for i in range(1, n + 1)]
    hosts = []
    for name in names:
        h = host_by_name(name)
        ns_ok = h.netns in netns_list()
        entry = {
            "name": h.name, "address": h.address, "netns": h.netns,
            "docker_host": h.docker_host, "docker_socket": str(h.socket),
            "checkpoint_dir": str(h.workdir), "ssh_key": str(h.id_key),
            "known_hosts": str(h.known_hosts),
            "data_root": str(h.data_root), "exec_root": str(h.exec_root),
            "netns_up": ns_ok,
            "dockerd": h.dockerd_up(), "dockerd_pid": h.dockerd_pid(),
            "sshd": h.sshd_up(), "sshd_pid": h.sshd_pid_alive(),
            "link": {"egress": tc_summary("eth0", h.netns) if ns_ok else "",
                     "ingress": tc_summary(h.veth) if link_info(h.veth) else ""},
        }
        hosts.append(entry)
    reg = {"address": REGISTRY, "up": registry_up(),
           "pid": pid_from_file(REGISTRY_PID, str(REGISTRY_CONFIG)),
           "storage": str(REGISTRY_DIR), "images": {}}
    if reg["up"]:
        reg["images"] = {name: registry_tags(name) for name in IMAGES}
    bridge = {"name": BRIDGE, "address": GATEWAY + "/24", "up": link_info(BRIDGE) is not None}
    systems = []
    for h in systems_of(state.get("releases", [])):
        entry = {"name": h.name, "address": h.address, "netns": h.netns, "root": str(h.root),
                 "docker_host": h.controller_docker_host, "docker_socket": str(h.socket),
                 "data_root": str(h.data_root), "checkpoint_dir": str(h.workdir),
                 "booted": h.booted(), "sshd": bool(h.booted() and h.sshd_pid()),
                 "dockerd": docker_ping(h.socket)}
        entry.update(labsystems.system_versions(h))
        systems.append(entry)
    up = bool(hosts) and n == len(hosts) and all(
        x["netns_up"] and x["dockerd"] and x["sshd"] for x in hosts) and reg["up"] and \
        bridge["up"] and all("latest" in t for t in reg["images"].values()) and INVENTORY.exists() and \
        all(x["sshd"] and x["dockerd"] for x in systems)
    return {"up": up, "hosts": hosts, "systems": systems, "registry": reg, "bridge": bridge, "criu": criu_info(),
            "inventory": str(INVENTORY), "systems_inventory": str(SYSTEMS_INVENTORY) if systems else None,
            "known_hosts": str(KNOWN_HOSTS),
            "controller_key": str(CONTROLLER_KEY)}


def cmd_status(args):
    st = collect_status()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0 if st["up"] else 1
    yn = {True: "up", False: "DOWN"}
    say("edge lab: %s" % ("up" if st["up"] else "NOT fully up"))
    fmt = "%-6s %-11s %-14s %-7s %-7s %-39s %s"
    say(fmt % ("HOST", "ADDRESS", "NETNS", "DOCKERD", "SSHD", "DOCKER_HOST", "LINK"))
    for x in st["hosts"]:
        link = x["link"]["egress"] or "-"
        say(fmt % (x["name"], x["address"], x["netns"], yn[x["dockerd"]], yn[x["sshd"]],
                   x["docker_host"], link))
    for x in st["systems"]:
        say("%-6s %-11s %-14s %-7s %-7s %s, Docker %s (containerd %s, runc %s), CRIU %s" % (
            x["name"], x["address"], x["netns"], yn[x["dockerd"]], yn[x["sshd"]], x["release"],
            x["engine"], x["containerd"], x["runc"], x["criu"]))
    r = st["registry"]
    say("registry %s: %s%s" % (r["address"], yn[r["up"]], "".join(
        "  %s:%s" % (k, ",".join(v) or "-") for k, v in r["images"].items())))
    c = st["criu"]
    say("criu: %s (%s)" % (c.get("real_path") or "missing", c.get("version")))
    say("inventory: %s" % st["inventory"])
    return 0 if st["up"] else 1
