"""What an edge offers a fleet run: its running containers with the memory and CPU they use
(read from their cgroups, v1 or v2), the host's memory, CPUs and load average."""

import os
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_paths(pid, proc="/proc"):
    """{controller: path} of a process, from /proc/PID/cgroup ('' is the v2 unified hierarchy)."""
    paths = {}
    try:
        with open(os.path.join(proc, str(pid), "cgroup")) as handle:
            for line in handle:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) != 3:
                    continue
                for controller in parts[1].split(","):
                    paths[controller] = parts[2]
    except OSError:
        return {}
    return paths


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _stat_value(text, key):
    for line in (text or "").splitlines():
        name, _sep, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def _v1_dir(paths, controller, root):
    if controller not in paths:
        return None
    # v1 mounts are named after the controller or a comma-joined group of them (cpu,cpuacct).
    for mount in (controller, "cpu,cpuacct", "cpuacct,cpu"):
        directory = os.path.join(root, mount, paths[controller].lstrip("/"))
        if os.path.isdir(directory):
            return directory
    return None


def _v2_dir(paths, root):
    if "" not in paths:
        return None
    for base in (root, os.path.join(root, "unified")):
        directory = os.path.join(base, paths[""].lstrip("/"))
        if os.path.isfile(os.path.join(directory, "cgroup.controllers")):
            return directory
    return None


def cpu_usage_ns(paths, root=CGROUP_ROOT):
    """CPU time the cgroup used so far, in nanoseconds, or None when it cannot be read."""
    directory = _v1_dir(paths, "cpuacct", root)
    if directory:
        text = _read(os.path.join(directory, "cpuacct.usage"))
        if text and text.strip().isdigit():
            return int(text)
    directory = _v2_dir(paths, root)
    if directory:
        usec = _stat_value(_read(os.path.join(directory, "cpu.stat")), "usage_usec")
        if usec is not None:
            return usec * 1000
    return None


def memory_bytes(paths, root=CGROUP_ROOT):
    """Memory the cgroup uses without the inactive page cache (as `docker stats` counts it), or None."""
    directory = _v1_dir(paths, "memory", root)
    if directory:
        usage = _read(os.path.join(directory, "memory.usage_in_bytes"))
        if usage and usage.strip().isdigit():
            inactive = _stat_value(_read(os.path.join(directory, "memory.stat")), "total_inactive_file") or 0
            return max(int(usage) - inactive, 0)
    directory = _v2_dir(paths, root)
    if directory:
        usage = _read(os.path.join(directory, "memory.current"))
        if usage and usage.strip().isdigit():
            inactive = _stat_value(_read(os.path.join(directory, "memory.stat")), "inactive_file") or 0
            return max(int(usage) - inactive, 0)
    return None


def meminfo(path="/proc/meminfo"):
    """MemTotal and MemAvailable in bytes."""
    values = {}
    for line in (_read(path) or "").splitlines():
        name, _sep, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * 1024
    return {"total": values.get("MemTotal", 0), "available": values.get("MemAvailable", values.get("MemFree", 0))}


def loadavg(path="/proc/loadavg"):
    fields = (_read(path) or "0 0 0").split()
    return [float(value) for value in fields[:3]]


def host_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def sample_cpu(pids, seconds, root=CGROUP_ROOT, proc="/proc", clock=time.monotonic, sleep=time.sleep):
    """{pid: cores used} over `seconds` for each pid whose cgroup can be read (others are left out)."""
    paths = {pid: cgroup_paths(pid, proc) for pid in pids}
    first = {pid: cpu_usage_ns(paths[pid], root) for pid in pids}
    started = clock()
    sleep(seconds)
    elapsed = max(clock() - started, 1e-3)
    cores = {}
    for pid in pids:
        second = cpu_usage_ns(paths[pid], root)
        if first[pid] is not None and second is not None:
            cores[pid] = round(max(second - first[pid], 0) / 1e9 / elapsed, 4)
    return cores


def edge_capacity(containers, mem, cpus, memory_override=None, cpus_override=None):
    """What the edge offers: capacity (inventory override or the host's), what its containers use,
    and what is free. Free memory is what the capacity leaves after the containers, never more
    than the kernel says is available."""
    capacity = int(memory_override or mem["total"])
    used = sum(c["memory_bytes"] for c in containers)
    cpu_count = float(cpus_override or cpus)
    cpu_used = round(sum(c["cpu_cores"] for c in containers), 4)
    return {
        "memory_bytes": capacity,
        "memory_available_bytes": mem["available"],
        "containers_memory_bytes": used,
        "free_memory_bytes": max(min(capacity - used, mem["available"]), 0),
        "cpus": cpu_count,
        "cpu_cores_used": cpu_used,
        "load": round(cpu_used / cpu_count, 4) if cpu_count else 0.0,
    }
