#!/usr/bin/python
"""Ansible module: where a container runs, its portable configuration, and what the host offers for a migration."""

DOCUMENTATION = r"""
module: edge_container_info
short_description: Describe a container and the host's migration tooling
description:
  - Tells whether a container of that name exists and runs on this host's Docker Engine,
    returns the configuration needed to create the same container elsewhere, its memory
    use, and the engine's and the migration tools' versions.
  - Never changes anything.
options:
  name:
    description: Container name (or id).
    type: str
    required: true
  docker_host:
    description: Docker Engine address.
    type: str
    default: unix:///var/run/docker.sock
  docker_timeout:
    description: Seconds to wait for a Docker Engine call.
    type: int
    default: 120
requirements: [docker (Python SDK)]
author: edge-migrate developers
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
running:
  description: Whether it is running.
  type: bool
  returned: always
container:
  description: Id, name, image, status, running, pid, restart_policy.
  type: dict
  returned: when exists
config:
  description: Portable configuration (Docker create body) to create the same container on another engine.
  type: dict
  returned: when exists
memory_bytes:
  description: Memory the container's cgroup uses, in bytes (0 if not running).
  type: int
  returned: always
engine:
  description: Docker Engine version, API version, experimental flag, data root, runtimes.
  type: dict
  returned: always
tools:
  description: Versions of criu, xdelta3 and rsync on this host (null when missing).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import (
    DockerError,
    engine_info,
    inspect_container,
    memory_usage,
    portable_config,
    summary,
)
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail

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


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True), **DOCKER_ARGS),
                           supports_check_mode=True)
    try:
        api = docker_api(module)
        inspect = inspect_container(api, module.params["name"])
        result = dict(changed=False, exists=inspect is not None, running=False, memory_bytes=0,
                      engine=engine_info(api), tools=tool_versions(module))
        if inspect is not None:
            result["container"] = summary(inspect)
            result["running"] = result["container"]["running"]
            result["config"] = portable_config(inspect)
            if result["running"]:
                result["memory_bytes"] = memory_usage(api, inspect["Id"])
    except DockerError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
