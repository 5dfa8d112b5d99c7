"""A container's user-defined networks, made the same on another engine: same driver,
options, IPAM (subnets, gateways, ranges) and labels, so that the container keeps its
static address and its aliases there."""

import ipaddress

from ansible.module_utils.edge_docker import APIError, DockerError, NotFound, container_endpoints

# Drivers this module creates a network with; another driver's network (overlay, macvlan,
# a plugin's) depends on more than one engine's settings and must exist on the destination.
CREATABLE_DRIVERS = ("bridge",)


def inspect_network(api, name):
    try:
        return api.inspect_network(name)
    except NotFound:
        return None
    except APIError as exc:
        raise DockerError("cannot inspect network %s: %s" % (name, exc), cmd="GET /networks/%s" % name) from exc


def portable_network(inspect):
    """What makes a network the same on another engine (its id and containers do not)."""
    ipam = inspect.get("IPAM") or {}
    return {
        "name": inspect["Name"],
        "driver": inspect.get("Driver") or "bridge",
        "scope": inspect.get("Scope") or "local",
        "options": inspect.get("Options") or {},
        "labels": inspect.get("Labels") or {},
        "internal": bool(inspect.get("Internal")),
        "attachable": bool(inspect.get("Attachable")),
        "enable_ipv6": bool(inspect.get("EnableIPv6")),
        "ipam": {"driver": ipam.get("Driver") or "default", "options": ipam.get("Options") or {},
                 "config": [{key: value for key, value in pool.items() if value}
                            for pool in ipam.get("Config") or []]},
    }


def describe(api, container_inspect):
    """The container's user-defined networks, each with its endpoint (aliases, static addresses)."""
    networks = []
    for name, endpoint in container_endpoints(container_inspect).items():
        inspect = inspect_network(api, name)
        if inspect is None:  # removed while the container was stopped
            networks.append({"name": name, "missing": True, "endpoint": endpoint})
        else:
            networks.append(dict(portable_network(inspect), endpoint=endpoint))
    return networks


def subnets(network):
    return sorted(str(ipaddress.ip_network(pool["Subnet"], strict=False))
                  for pool in network["ipam"]["config"] if pool.get("Subnet"))


def conflicts(wanted, existing):
    """Why the destination's network of that name is not the container's one (empty: it is)."""
    problems = []
    if existing["driver"] != wanted["driver"]:
        problems.append("its driver is %s, the source's %s" % (existing["driver"], wanted["driver"]))
    if subnets(wanted) and subnets(existing) != subnets(wanted):
        problems.append("its subnets are %s, the source's %s"
                        % (", ".join(subnets(existing)) or "none", ", ".join(subnets(wanted))))
    return problems


def static_addresses(network):
    ipam = (network.get("endpoint") or {}).get("IPAMConfig") or {}
    return [ipam[key] for key in ("IPv4Address", "IPv6Address") if ipam.get(key)]


def address_fits(address, network):
    """Whether a static address lies in one of the network's subnets."""
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in map(ipaddress.ip_network, subnets(network)))


def address_users(address, inspect):
    """Containers of an engine's network inspect document that hold this address."""
    users = []
    for container in (inspect.get("Containers") or {}).values():
        for key in ("IPv4Address", "IPv6Address"):
            held = (container.get(key) or "").split("/")[0]
            if held and ipaddress.ip_address(held) == ipaddress.ip_address(address):
                users.append(container.get("Name") or "?")
    return users


def refusals(wanted, existing_inspect):
    """Why this network cannot be had on this engine as the container needs it."""
    name = wanted["name"]
    if wanted.get("missing"):
        if existing_inspect is None:
            return ["network %s of the service no longer exists on its source, nor on the destination: create "
                    "it on the destination first" % name]
        return []
    if existing_inspect is None:
        if wanted["driver"] not in CREATABLE_DRIVERS:
            return ["network %s (driver %s) does not exist on the destination, and only %s networks are created "
                    "there by the migration: create it there first"
                    % (name, wanted["driver"], "/".join(CREATABLE_DRIVERS))]
        return []
    existing = portable_network(existing_inspect)
    problems = conflicts(wanted, existing)
    if problems:
        return ["network %s exists on the destination but is not the source's: %s; remove or rename one of them"
                % (name, "; ".join(problems))]
    found = []
    for address in static_addresses(wanted):
        if subnets(existing) and not address_fits(address, existing):
            found.append("the service's address %s on network %s is outside the destination's subnets %s"
                         % (address, name, ", ".join(subnets(existing))))
        users = address_users(address, existing_inspect)
        if users:
            found.append("the service's address %s on network %s is taken on the destination by %s"
                         % (address, name, ", ".join(users)))
    return found


def create_body(wanted):
    """The Docker API body that creates the network like the source's."""
    return {"Name": wanted["name"], "Driver": wanted["driver"], "CheckDuplicate": True,
            "Options": wanted["options"], "Labels": wanted["labels"], "Internal": wanted["internal"],
            "Attachable": wanted["attachable"], "EnableIPv6": wanted["enable_ipv6"],
            "IPAM": {"Driver": wanted["ipam"]["driver"], "Options": wanted["ipam"]["options"],
                     "Config": wanted["ipam"]["config"]}}


def create(api, wanted):
    body = create_body(wanted)
    try:
        # Not the SDK's create_network: it leaves EnableIPv6 and Internal out when false, and an engine
        # with default-network-opts would then decide them, not the source.
        return api._result(api._post_json(api._url("/networks/create"), data=body), True)["Id"]
    except APIError as exc:
        raise DockerError("cannot create network %s on the destination: %s"
                          % (wanted["name"], getattr(exc, "explanation", None) or exc),
                          cmd="POST /networks/create %s" % body) from exc
