#!/usr/bin/python
"""Ansible module: where a container runs, its portable configuration, and what the host offers for a migration."""

DOCUMENTATION = r"""
module: edge_container_info
short_description: Describe a container and the host's migration tooling
description:
  - Tells whether a container of that name exists and runs on this host's Docker Engine,
    returns the configuration needed to create the same container elsewhere, its memory
    use, and the engine's and the migration tools' versions.
  - Also describes the container's files for a migration (in C(storage)), that is its
    writable layer (overlay2's upper directory) and each mount, with the volumes' driver,
    labels, options, size and the other containers that use them, and the free space of
    the engine's data root.
  - Never changes anything.
options:
  name:
    description: Container name (or id).
    type: str
    required: true
  workdir:
    description:
      - The host's checkpoint directory. When given, the result has the free space there
        and the leftovers of earlier, interrupted migrations of this container.
    type: path
  check_criu:
    description: Run C(criu check) and report whether CRIU works on this host's kernel.
    type: bool
    default: false
  sizes:
    description: Measure the container's layer and volumes (walks their files).
    type: bool
    default: true
extends_documentation_fragment:
  - edge
  - edge.read_only
requirements: [docker (Python SDK)]
seealso:
  - module: edge_network
    description: Makes the networks it returns on a destination.
  - module: edge_restore
    description: Creates the container from its I(config) on a destination.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Find where openface runs
  edge_container_info:
    name: openface
    docker_host: unix:///run/edgelab/edge1/docker.sock
  register: where
"""

RETURN = r"""
exists:
  description: Whether a container of that name exists.
  type: bool
  returned: always
  sample: true
running:
  description: Whether it is running.
  type: bool
  returned: always
  sample: true
container:
  description: Id, name, image, status, running, pid, restart_policy.
  type: dict
  returned: when exists
  contains:
    id:
      description: Full id of the container.
      type: str
    name:
      description: Its name, without the leading slash.
      type: str
    image:
      description: How it names its image (C(Config.Image)).
      type: str
    status:
      description: Docker's state (C(running), C(exited)...).
      type: str
    running:
      description: Whether it is running.
      type: bool
    pid:
      description: Host pid of its main process (0 when not running).
      type: int
    restart_policy:
      description: Name of its restart policy (empty when none).
      type: str
  sample: {id: 4f2a9c0e1b3d..., name: openface, image: 'openface:latest', status: running, running: true,
           pid: 12345, restart_policy: unless-stopped}
config:
  description:
    - Portable configuration (Docker create body) to create the same container on another
      engine; C(NetworkingConfig) has its user-defined networks with the aliases and static
      addresses it has there.
  type: dict
  returned: when exists
  sample: {Image: 'openface:latest', Cmd: [python3, server.py], HostConfig: {RestartPolicy: {Name: 'no'}}}
uncarried_settings:
  description:
    - The container's settings that C(config) leaves out, so that a container created from it
      would lack them (for example C(--volumes-from), C(--link), C(--cgroup-parent), C(--gpus)).
  type: list
  elements: dict
  returned: when exists
  contains:
    setting:
      description: The C(HostConfig) key.
      type: str
    flag:
      description: The C(docker run) option that sets it (empty when it has none).
      type: str
    why:
      description: Why it cannot be given to a container on another host.
      type: str
  sample: [{setting: VolumesFrom, flag: '--volumes-from', why: 'it names another container'}]
image:
  description:
    - The container's image, by identity; id (C(sha256:...)), repo_digests (the
      C(repo@sha256:...) references a registry has it under; empty for an image made on this
      host), repo_tags and layers (C(RootFS.Layers) diff ids). Only id when the engine no
      longer has the image.
  type: dict
  returned: when exists
  contains:
    id:
      description: Image id (C(sha256:...)).
      type: str
    repo_digests:
      description: The C(repo@sha256:...) references a registry has it under.
      type: list
      elements: str
    repo_tags:
      description: Its tags on this host.
      type: list
      elements: str
    layers:
      description: Its C(RootFS.Layers) diff ids.
      type: list
      elements: str
  sample: {id: 'sha256:7d3f...', repo_digests: ['10.77.0.1:5000/openface@sha256:ab12...'],
           repo_tags: ['10.77.0.1:5000/openface:latest'], layers: ['sha256:5f70...', 'sha256:9c1e...']}
networks:
  description:
    - The container's user-defined networks (not bridge, host, none), each with name,
      driver, scope, options, labels, internal, attachable, enable_ipv6, ipam (driver,
      options, config with subnets and gateways) and endpoint (Aliases, IPAMConfig), for
      M(edge_network) on a destination.
  type: list
  elements: dict
  returned: when exists
  sample: [{name: appnet, driver: bridge, scope: local, internal: false, attachable: false, enable_ipv6: false}]
memory_bytes:
  description: Memory the container's cgroup uses, in bytes (0 if not running).
  type: int
  returned: always
  sample: 157286400
engine:
  description: Docker Engine version, API version, experimental flag, data root, runtimes.
  type: dict
  returned: always
  sample: {version: 27.3.1, api_version: '1.47', experimental: true, root_dir: /var/lib/docker, runtimes:
    [edge-migrate, runc]}
tools:
  description: Versions of criu, xdelta3 and rsync on this host (null when missing).
  type: dict
  returned: always
  contains:
    criu:
      description: First line of C(criu --version), null when missing.
      type: str
    xdelta3:
      description: First line of C(xdelta3 -V), null when missing.
      type: str
    rsync:
      description: First line of C(rsync --version), null when missing.
      type: str
  sample: {criu: 'Version: 3.19', xdelta3: 'Xdelta version 3.0.11, Copyright (C) Joshua MacDonald',
           rsync: rsync  version 3.2.7  protocol version 31}
criu_check:
  description: Whether C(criu check) passed (ok) and its last line of output (message).
  type: dict
  returned: when check_criu
  contains:
    ok:
      description: Whether C(criu check) passed.
      type: bool
    message:
      description: Its last line of output.
      type: str
    lazy_pages:
      description: Whether CRIU can restore lazily here (C(criu check --feature uffd-noncoop)).
      type: bool
  sample: {ok: true, message: Looks good., lazy_pages: true}
disk_free_bytes:
  description: Free bytes in I(workdir) (or its nearest existing parent).
  type: int
  returned: when workdir is given
  sample: 53687091200
storage:
  description:
    - The engine's storage driver (driver), where it keeps images and container layers
      (image_store, C(graphdriver), or C(containerd) with Docker's containerd-snapshotter
      feature), data root (root_dir) and its free bytes (root_free_bytes); when the container
      exists also image_id, layer_driver, upper_dir (overlay2's UpperDir, null with another
      driver), layer (entries, files and bytes in it) and mounts (type, name, source,
      destination, rw; for volumes also driver, labels, options, anonymous, copyable (a plain
      local volume whose content is a directory of this host), used_by (other containers) and size).
  type: dict
  returned: always
  sample: {driver: overlay2, image_store: graphdriver, root_dir: /var/lib/docker, root_free_bytes: 53687091200}
dump_access:
  description:
    - What decides whether CRIU can dump the running container here, process_uids (the real
      uids of its processes, as the host numbers them), cap_sys_resource (whether root
      here has CAP_SYS_RESOURCE; without it CRIU cannot dump a process of another uid) and
      io_uring (its processes that hold an io_uring instance, which CRIU cannot dump) and
      exec_processes (its processes started with C(docker exec), which a checkpoint leaves out).
  type: dict
  returned: when the container runs
  contains:
    process_uids:
      description: The real uids of the container's processes, as the host numbers them.
      type: list
      elements: int
    cap_sys_resource:
      description: Whether root here has CAP_SYS_RESOURCE.
      type: bool
    io_uring:
      description: The container's processes that hold an io_uring instance, as C(pid (command)).
      type: list
      elements: str
    exec_processes:
      description:
        - The container's running C(docker exec) processes but its health probes, as C(pid (command)).
          CRIU dumps the tree of the container's first process, which they are not in.
      type: list
      elements: str
  sample: {process_uids: [0], cap_sys_resource: true, io_uring: ['2187 (mariadbd)'], exec_processes: []}
leftovers:
  description:
    - Directories of earlier migrations of this container under I(workdir), each with
      path, migration_id, final_complete (a complete final checkpoint is in it) and
      restart_policy (the policy the container had before that migration set it to C(no), or null),
      prepared (null, or destination, expires_at and waiter_jid, the background job that waits on the
      destination, of a prepared migration that has not expired; it waits for its finish and is
      not a leftover to clean).
  type: list
  elements: dict
  returned: when workdir is given
  sample: [{path: /var/lib/edge-migrate/openface-20261125T101500, migration_id: openface-20261125T101500,
    final_complete: false, restart_policy: null, prepared: null}]
"""

import concurrent.futures
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_criu_options import has_cap_sys_resource, io_uring_holders, process_tree, process_uids
from ansible.module_utils.edge_docker import (
    DockerError,
    engine_info,
    exec_processes,
    inspect_container,
    memory_usage,
    portable_config,
    recorded_restart_policy,
    summary,
    uncarried_settings,
)
from ansible.module_utils.edge_fs import describe
from ansible.module_utils.edge_image import image_facts
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail
from ansible.module_utils.edge_network import describe as describe_networks
from ansible.module_utils.edge_prepared import find as find_prepared

TOOL_VERSION_COMMANDS = {"criu": ["criu", "--version"], "xdelta3": ["xdelta3", "-V"], "rsync": ["rsync", "--version"]}


def tool_versions(module):
    versions = {}
    for tool, argv in TOOL_VERSION_COMMANDS.items():
        if module.get_bin_path(argv[0]) is None:
            versions[tool] = None
            continue
        _rc, out, err = module.run_command(argv)
        lines = [line.strip() for line in (out or err).splitlines() if line.strip()]
        versions[tool] = lines[0] if lines else "unknown"
    return versions


def criu_check(module):
    if module.get_bin_path("criu") is None:
        return {"ok": False, "message": "criu is not installed", "lazy_pages": False}
    rc, out, err = module.run_command(["criu", "check"])
    lines = [line.strip() for line in (out + err).splitlines() if line.strip()]
    result = {"ok": rc == 0, "message": lines[-1] if lines else "rc=%d" % rc, "lazy_pages": False}
    if rc == 0:
        # A lazy restore needs userfaultfd with the events of a process tree that forks and remaps.
        result["lazy_pages"] = module.run_command(["criu", "check", "--feature", "uffd-noncoop"])[0] == 0
    return result


def free_bytes(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def engine_storage(api):
    info = api.info()
    root = info.get("DockerRootDir")
    # With "features": {"containerd-snapshotter": true} images and container layers live in
    # containerd's snapshotter, not in a graph driver under DockerRootDir.
    snapshotter = any(pair[0] == "driver-type" and str(pair[1]).startswith("io.containerd.snapshotter")
                      for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    return {"driver": info.get("Driver"), "image_store": "containerd" if snapshotter else "graphdriver",
            "root_dir": root, "root_free_bytes": free_bytes(root) if root else None}


def leftovers(workdir, name):
    """Directories <workdir>/<name>-<timestamp> that a migration of this container left."""
    found = []
    # A prepared migration that has not expired waits for its finish: not a leftover to clean.
    prepared = {record["migration_id"]: {"destination": record["destination"], "expires_at": record["expires_at"],
                                         "waiter_jid": record.get("waiter_jid")}
                for record in find_prepared(workdir, name) if not record.get("error") and not record["expired"]}
    if os.path.isdir(workdir):
        for entry in sorted(os.listdir(workdir)):
            rest = entry[len(name) + 1:] if entry.startswith(name + "-") else ""
            if rest[:8].isdigit() and "T" in rest:
                path = os.path.join(workdir, entry)
                # runc writes descriptors.json once CRIU's dump is complete.
                complete = os.path.isfile(os.path.join(path, "final", "descriptors.json"))
                found.append({"path": path, "migration_id": entry, "final_complete": complete,
                              "restart_policy": recorded_restart_policy(path), "prepared": prepared.get(entry)})
    return found


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        workdir=dict(type="path"),
        check_criu=dict(type="bool", default=False),
        sizes=dict(type="bool", default=True),
        **DOCKER_ARGS), supports_check_mode=True)
    # The tools answer (criu check alone takes 0.1-0.2 s) while the engine is asked.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    tools = pool.submit(tool_versions, module)
    criu = pool.submit(criu_check, module) if module.params["check_criu"] else None
    pool.shutdown(wait=False)
    try:
        api = docker_api(module)
        inspect = inspect_container(api, module.params["name"])
        result = dict(changed=False, exists=inspect is not None, running=False, memory_bytes=0,
                      engine=engine_info(api), tools=tools.result())
        if inspect is not None:
            result["container"] = summary(inspect)
            result["running"] = result["container"]["running"]
            result["config"] = portable_config(inspect)
            result["uncarried_settings"] = uncarried_settings(inspect)
            result["image"] = image_facts(api, inspect["Image"]) or {"id": inspect["Image"]}
            result["networks"] = describe_networks(api, inspect)
            if result["running"]:
                result["memory_bytes"] = memory_usage(api, inspect["Id"])
                pid = inspect["State"].get("Pid")
                members = process_tree(pid) if pid else set()
                result["dump_access"] = {"process_uids": process_uids(pid, members=members),
                                         "io_uring": io_uring_holders(pid, members=members),
                                         "exec_processes": exec_processes(api, inspect),
                                         "cap_sys_resource": has_cap_sys_resource()}
        result["storage"] = engine_storage(api)
        if inspect is not None:
            result["storage"].update(describe(api, inspect, module.params["sizes"]))
        if module.params["workdir"]:
            result["disk_free_bytes"] = free_bytes(module.params["workdir"])
            result["leftovers"] = leftovers(module.params["workdir"], module.params["name"])
        if criu is not None:
            result["criu_check"] = criu.result()
    except DockerError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
