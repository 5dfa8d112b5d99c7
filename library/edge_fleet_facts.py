#!/usr/bin/python
"""Ansible module: what an edge runs and what it has left, for planning a fleet of migrations."""

DOCUMENTATION = r"""
module: edge_fleet_facts
short_description: List an edge's containers with their memory and CPU use, and the edge's free memory and load
description:
  - Lists every container of this host's Docker Engine; for the running ones, the memory and
    the CPU they use, read from their cgroups (v1 or v2) over I(sample_seconds).
  - Reports the edge's memory capacity, its free memory (the capacity less what its containers
    use, never more than the kernel's MemAvailable), its CPUs and its load, counted as the
    CPU its containers use per CPU. Counting the containers rather than the load average
    keeps edges apart that share a kernel (the lab's hosts are network namespaces of one machine).
  - Never changes anything.
options:
  memory_bytes:
    description:
      - Memory this edge offers to containers, in bytes. Default the host's MemTotal.
    type: int
  cpus:
    description: CPUs this edge offers to containers. Default the CPUs this process may run on.
    type: float
  sample_seconds:
    description: Interval over which the containers' CPU use is measured (0 to 60 seconds).
    type: float
    default: 1.0
extends_documentation_fragment:
  - edge
  - edge.read_only
requirements: [docker (Python SDK)]
seealso:
  - module: edge_fleet_plan
    description: Plans the fleet's migrations from these facts.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: What runs on this edge, its free memory and load
  edge_fleet_facts:
    docker_host: "{{ docker_host }}"
    memory_bytes: "{{ edge_memory_bytes | default(omit) }}"
  register: fleet_facts
"""

RETURN = r"""
containers:
  description: The running containers, each with name, id, image, memory_bytes and cpu_cores (CPU cores used).
  type: list
  elements: dict
  returned: always
  sample: [{name: openface, id: 4f2a9c0e1b3d..., image: 'openface:latest', memory_bytes: 157286400, cpu_cores: 0.35}]
names:
  description: Names of every container on the engine, running or not.
  type: list
  elements: str
  returned: always
  sample: [openface, notes]
memory_bytes:
  description: Memory capacity of the edge.
  type: int
  returned: always
  sample: 4294967296
memory_available_bytes:
  description: The kernel's MemAvailable.
  type: int
  returned: always
  sample: 3221225472
containers_memory_bytes:
  description: Memory the running containers use.
  type: int
  returned: always
  sample: 314572800
free_memory_bytes:
  description: Capacity less what the containers use, at most MemAvailable.
  type: int
  returned: always
  sample: 2906652672
cpus:
  description: CPUs of the edge.
  type: float
  returned: always
  sample: 4.0
cpu_cores_used:
  description: CPU cores the running containers used over the sample.
  type: float
  returned: always
  sample: 0.52
load:
  description: cpu_cores_used / cpus.
  type: float
  returned: always
  sample: 0.13
loadavg:
  description: The host's 1, 5 and 15 minute load averages (the machine's, shared by edges that share a kernel).
  type: list
  elements: float
  returned: always
  sample: [0.42, 0.35, 0.3]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError, inspect_container
from ansible.module_utils.edge_fleet_host import (
    cgroup_paths,
    edge_capacity,
    host_cpus,
    loadavg,
    meminfo,
    memory_bytes,
    sample_cpu,
)
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail

try:
    from docker.errors import APIError
except ImportError:  # docker_api reports the missing SDK
    APIError = Exception


def running_containers(api):
    """(names of every container, [(name, inspect)] of the running ones)."""
    try:
        listed = api.containers(all=True)
    except APIError as exc:
        raise DockerError("cannot list the containers: %s" % exc, cmd="GET /containers/json?all=1") from exc
    names, running = [], []
    for entry in listed:
        name = (entry.get("Names") or ["/" + entry["Id"][:12]])[0].lstrip("/")
        names.append(name)
        if entry.get("State") == "running":
            inspect = inspect_container(api, entry["Id"])
            if inspect and inspect["State"].get("Running") and inspect["State"].get("Pid"):
                running.append((name, inspect))
    return sorted(names), running


def main():
    module = AnsibleModule(argument_spec=dict(
        memory_bytes=dict(type="int"),
        cpus=dict(type="float"),
        sample_seconds=dict(type="float", default=1.0),
        **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    if not 0 <= params["sample_seconds"] <= 60 or (params["cpus"] is not None and not 0 < params["cpus"] <= 4096) \
            or (params["memory_bytes"] is not None and params["memory_bytes"] < 0):  # NaN fails the comparisons
        module.fail_json(msg="sample_seconds must be 0 to 60, cpus more than 0 and at most 4096, memory_bytes not "
                             "negative (got %s, %s, %s)" % (params["sample_seconds"], params["cpus"],
                                                            params["memory_bytes"]))
    try:
        api = docker_api(module)
        names, running = running_containers(api)
    except DockerError as exc:
        fail(module, exc)
    pids = [inspect["State"]["Pid"] for _name, inspect in running]
    cores = sample_cpu(pids, max(module.params["sample_seconds"], 0.0))
    containers = []
    for name, inspect in running:
        pid = inspect["State"]["Pid"]
        used = memory_bytes(cgroup_paths(pid))
        containers.append({"name": name, "id": inspect["Id"], "image": inspect["Config"].get("Image"),
                           "memory_bytes": used or 0, "cpu_cores": cores.get(pid, 0.0),
                           "measured": used is not None and pid in cores})
    result = edge_capacity(containers, meminfo(), host_cpus(), module.params["memory_bytes"], module.params["cpus"])
    module.exit_json(changed=False, containers=containers, names=names, loadavg=loadavg(), **result)


if __name__ == "__main__":
    main()
