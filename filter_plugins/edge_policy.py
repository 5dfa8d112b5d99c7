"""What a destination lets a migrated container have: the container configuration the source
reports is data from an edge that may be compromised, so anything in it that would give the
container more power over the destination than an ordinary container has is refused unless
the destination's inventory allows it. Also the rule for names that come from requests and edges."""

import re

# Docker's own rule for container names (daemon/names: RestrictedNamePattern).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_MAX = 128
# The capabilities every Docker container has unless it drops them (oci/caps/defaults.go).
DOCKER_DEFAULT_CAPABILITIES = frozenset((
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"))
# HostConfig settings the migration carries (module_utils/edge_docker.py HOST_CONFIG_KEYS; a unit
# test keeps the two equal). A report with any other setting is refused: the destination
# would otherwise create whatever a source puts there (CgroupParent, VolumesFrom, DeviceRequests…).
HOST_CONFIG_KEYS = frozenset((
    "PortBindings", "Binds", "Mounts", "RestartPolicy", "NetworkMode", "Memory", "MemorySwap", "NanoCpus",
    "CpuShares", "CapAdd", "CapDrop", "Privileged", "SecurityOpt", "ExtraHosts", "Dns", "DnsSearch", "Tmpfs",
    "ShmSize", "Sysctls", "Ulimits", "LogConfig", "Init", "IpcMode", "PidMode", "ReadonlyRootfs", "Runtime",
    "PidsLimit", "CpuQuota", "CpuPeriod", "CpusetCpus", "CpusetMems", "MemoryReservation",
    "OomKillDisable", "GroupAdd", "Devices", "UTSMode", "Isolation", "CgroupnsMode", "OomScoreAdj", "PublishAllPorts",
    "DnsOptions", "MemorySwappiness", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime", "UsernsMode"))
NAMESPACE_KEYS = (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts"), ("NetworkMode", "network"),
                  ("UsernsMode", "userns"))
TRUE = ("true", "yes", "on", "1")
DEFAULTS = {"privileged": False, "capabilities": ["SYS_PTRACE"], "host_namespaces": False, "unconfined": False,
            "devices": [], "volume_options": False}


def short(value, limit=120):
    """A value from an edge, quoted and cut to `limit` characters for a message."""
    text = repr(value) if not isinstance(value, str) else "'%s'" % value
    return text if len(text) <= limit else text[:limit] + "…' (%d characters)" % len(text)


def valid_name(value):
    """Whether `value` is a container name by Docker's rule (and short enough to be a file name)."""
    return isinstance(value, str) and len(value) <= NAME_MAX and bool(NAME_PATTERN.match(value))


def name_problem(value, what="service"):
    """Why `value` cannot be a name, or '' when it can."""
    if valid_name(value):
        return ""
    return ("%s %s is not a container name: Docker's rule is a letter or digit, then letters, digits, '_', '.' or "
            "'-' (at least 2 characters, at most %d)" % (what, short(value), NAME_MAX))


def _flag(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE


def _items(values, limit=10):
    """Values from an edge for a message: each quoted and cut, at most `limit` of them."""
    values = list(values)
    text = ", ".join(short(v, 60) for v in values[:limit])
    return text + (" and %d more" % (len(values) - limit) if len(values) > limit else "")


def _list(value):
    """A setting that is true (everything), false, or a list (or comma-separated string) of items."""
    if isinstance(value, bool):
        return value or []
    if isinstance(value, str):
        if value.strip().lower() in TRUE:
            return True
        return [item.strip() for item in value.split(",")
                if item.strip() and item.strip().lower() not in ("false", "no")]
    return [str(item).strip() for item in value or [] if str(item).strip()]


def _capability(name):
    name = str(name).strip().upper()
    return name[4:] if name.startswith("CAP_") else name


def config_bind_mounts(config):
    """The bind mounts a container configuration asks for ({type, source, destination, rw}), from
    HostConfig.Binds (host path:container path[:options]) and HostConfig.Mounts of type bind: what the
    destination would create, so what the policy and the disk plan both look at."""
    host_config = (config or {}).get("HostConfig") or {}
    mounts = []
    for bind in host_config.get("Binds") or []:
        parts = str(bind).split(":")
        if parts[0].startswith("/"):
            mounts.append({"type": "bind", "source": parts[0], "destination": parts[1] if len(parts) > 1 else "",
                           "rw": "ro" not in (parts[2].split(",") if len(parts) > 2 else [])})
    for mount in host_config.get("Mounts") or []:
        if isinstance(mount, dict) and mount.get("Type", "volume") == "bind":
            mounts.append({"type": "bind", "source": mount.get("Source") or "",
                           "destination": mount.get("Target") or "", "rw": not mount.get("ReadOnly")})
    return mounts


def _under(path, allowed):
    path = "/" + str(path).strip("/")
    if ".." in path.split("/"):
        return False
    return any(path == "/" + a.strip("/") or path.startswith(("/" + a.strip("/")).rstrip("/") + "/")
               for a in allowed)


def container_policy(config, allow=None, volumes=None, destination="the destination"):
    """Refusals (messages, each naming the setting that allows it) for what a container configuration
    would get on the destination beyond an ordinary container: Privileged, capabilities beyond Docker's
    default set and `allow.capabilities`, host namespaces, unconfined security options or custom seccomp
    profiles, devices, volumes with a driver other than local or driver options, settings the migration
    does not carry. `volumes` are the named volumes the destination would create (disk_plan's `volumes`).
    Bind mounts are disk_plan's to refuse (outside shared_bind_mounts), from the same config_bind_mounts."""
    allow = dict(DEFAULTS, **{k: v for k, v in (allow or {}).items() if v is not None})
    where = "on %s" % destination
    if not isinstance(config, dict):
        return ["the source reported no container configuration (%s): nothing is created %s" % (short(config), where)]
    host = config.get("HostConfig") or {}
    if not isinstance(host, dict):
        return ["the source reported a HostConfig that is not a mapping (%s)" % short(host)]
    refusals = []
    unknown = sorted(str(key) for key in host if key not in HOST_CONFIG_KEYS)
    if unknown:
        refusals.append("the source's configuration has settings the migration does not carry (%s); nothing of "
                        "that kind is created %s" % (_items(unknown), where))
    if _flag(host.get("Privileged", False)) and not _flag(allow["privileged"]):
        refusals.append("the container is privileged (--privileged): allow it %s with migration_allow_privileged: "
                        "true in its inventory" % where)
    allowed_caps = _list(allow["capabilities"])
    if allowed_caps is not True:
        extra = sorted({_capability(c) for c in host.get("CapAdd") or []}
                       - DOCKER_DEFAULT_CAPABILITIES - {_capability(c) for c in allowed_caps})
        if extra:
            refusals.append("the container adds capabilities beyond Docker's default set (%s): allow them %s with "
                            "migration_allow_capabilities: [%s]"
                            % (_items(extra), where, ", ".join(re.sub(r"[^A-Z0-9_]", "", c) for c in extra[:10])))
    namespaces = _list(allow["host_namespaces"])
    shared = [key for key, kind in NAMESPACE_KEYS if str(host.get(key) or "").lower() == "host"
              and namespaces is not True and kind not in namespaces]
    if shared:
        kinds = [kind for key, kind in NAMESPACE_KEYS if key in shared]
        refusals.append("the container shares the host's %s namespace%s (%s): allow it %s with "
                        "migration_allow_host_namespaces: [%s] (or true)"
                        % (", ".join(kinds), "" if len(kinds) == 1 else "s",
                           ", ".join("%s=host" % key for key in shared), where, ", ".join(kinds)))
    loose = []
    for option in host.get("SecurityOpt") or []:
        key, _sep, value = str(option).replace(":", "=", 1).partition("=")
        if value.strip().lower() == "unconfined" or (key == "label" and value.strip().lower() == "disable") \
                or (key == "seccomp" and value.strip().startswith("{")):
            loose.append(key + ("=<custom profile>" if value.strip().startswith("{") else "=" + value))
    if loose and not _flag(allow["unconfined"]):
        refusals.append("the container runs with its confinement lifted (SecurityOpt %s): allow it %s with "
                        "migration_allow_unconfined: true" % (_items(loose), where))
    devices = _list(allow["devices"])
    wanted = [str((d or {}).get("PathOnHost") if isinstance(d, dict) else d) for d in host.get("Devices") or []]
    outside = [d for d in wanted if devices is not True and not _under(d, devices)]
    if outside:
        refusals.append("the container is given host devices (%s): allow them %s with migration_allow_devices: [%s]"
                        % (_items(outside), where, ", ".join(short(d, 60).strip("'") for d in outside[:10])))
    special = []
    for volume in volumes or []:
        if (volume.get("driver") or "local") != "local" or volume.get("options"):
            special.append("%s (driver %s, options %s)" % (volume.get("name"), volume.get("driver") or "local",
                                                           volume.get("options") or {}))
    for mount in host.get("Mounts") or []:
        if isinstance(mount, dict) and (mount.get("VolumeOptions") or {}).get("DriverConfig"):
            special.append("%s (mount driver %s)" % (mount.get("Source") or mount.get("Target"),
                                                     mount["VolumeOptions"]["DriverConfig"]))
    if special and not _flag(allow["volume_options"]):
        refusals.append("the container's volumes use a driver or driver options (%s), which can mount any host "
                        "path or network storage: allow them %s with migration_allow_volume_options: true"
                        % (_items(special, 5), where))
    return refusals


def edge_leftovers(leftovers, workdirs, service):
    """The leftovers (edge_container_info's, each with the host that reported it) that are what they
    claim: a directory <that host's workdir>/<service>-<UTC time> of a migration of this service.
    Others are dropped: recovery and cleanup act on these paths on that host."""
    pattern = re.compile(r"^%s-[0-9]{8}T[0-9]{6}" % re.escape(service))
    kept = []
    for leftover in leftovers or []:
        if not isinstance(leftover, dict):
            continue
        workdir = (workdirs or {}).get(leftover.get("host"))
        migration_id = leftover.get("migration_id")
        if workdir and isinstance(migration_id, str) and pattern.match(migration_id) and "/" not in migration_id \
                and ".." not in migration_id and leftover.get("path") == workdir.rstrip("/") + "/" + migration_id:
            kept.append(leftover)
    return kept


class FilterModule:
    def filters(self):
        return {"container_policy": container_policy, "config_bind_mounts": config_bind_mounts,
                "name_problem": name_problem, "edge_leftovers": edge_leftovers}
