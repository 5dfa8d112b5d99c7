"""Tell the host at once where a freshly started container's addresses are.

The engine sets up a container's network (and the DNAT of its published ports) when it
starts it. Packets for the container that arrive from then on, clients' SYNs through a
published port, wait in the host's neighbor table for the container's address to resolve.
On a bridge that had no other container the first ARP request for it goes out before the
container answers, or not at all, and the kernel asks again only after retrans_time (1 s by
default): measured on a restored service, clients waited 0.3-0.55 s after it ran. Setting the
neighbor entry to the container's MAC address, which the engine reports, releases the waiting
packets at once; the entry then ages like any learned one."""

import ipaddress
import re

ROUTE_DEVICE = re.compile(r"\bdev (\S+)")
# `ip -d link show` names the kind of a bridge device among its details ("bridge_slave" for a port).
BRIDGE_KIND = re.compile(r"(^|\s)bridge\s")
MAC_ADDRESS = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def endpoints(inspect):
    """(network, address, mac) of each address the container has on a network, from its
    inspect document; addresses or MACs that are not well-formed are left out."""
    found = []
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    for name, endpoint in sorted(networks.items()):
        mac = (endpoint or {}).get("MacAddress") or ""
        if not MAC_ADDRESS.match(mac):
            continue
        for address in (endpoint.get("IPAddress"), endpoint.get("GlobalIPv6Address")):
            try:
                found.append((name, str(ipaddress.ip_address(address)), mac.lower()))
            except ValueError:
                continue
    return found


def bridge_towards(run, address):
    """The bridge the host reaches address on directly (no gateway), or None. (Asked of `ip`
    rather than /sys/class/net, which shows the network namespace /sys was mounted in.)"""
    rc, out, _err = run(["ip", "route", "get", address])
    match = ROUTE_DEVICE.search(out)
    if rc != 0 or " via " in " %s " % out or not match:
        return None
    rc, details, _err = run(["ip", "-o", "-d", "link", "show", "dev", match.group(1)])
    return match.group(1) if rc == 0 and BRIDGE_KIND.search(details) else None


def announce(run, inspect):
    """Set the host's neighbor entry of each of the container's addresses on a bridge to its
    MAC address. Returns what was done, one entry per address (with the error if it failed:
    clients then wait for the kernel's next ARP request, nothing else depends on it)."""
    done = []
    for network, address, mac in endpoints(inspect):
        device = bridge_towards(run, address)
        if device is None:
            continue
        argv = ["ip", "neigh", "replace", address, "lladdr", mac, "dev", device, "nud", "reachable"]
        rc, _out, err = run(argv)
        entry = dict(network=network, address=address, mac=mac, device=device)
        if rc != 0:
            entry["error"] = (err or "").strip() or "rc %s" % rc
        done.append(entry)
    return done
